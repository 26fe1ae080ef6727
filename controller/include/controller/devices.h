/*
 * controller/devices.h — the device nodes a gate's configuration opens (issue 15, docs/
 * operations.md "Device access"): its reader (from libnfc's connection string), its QR
 * scanner and its GPIO chip, as the systemd drop-in that lets one instance of
 * citypass-controller@.service open those and no other device. The unit's generator
 * (dist/systemd/citypass-controller-generator) writes it at boot and at every
 * `systemctl daemon-reload`, from `citypass-controller --device-policy`.
 */
#ifndef CONTROLLER_DEVICES_H
#define CONTROLLER_DEVICES_H

#include <stddef.h>

#include "controller/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The drop-in's text for cfg into out: a [Service] section with one `DeviceAllow=NODE rw`
 * per device. A reader reached through libusb (pn53x_usb, acr122_usb) can only be named by
 * its class, char-usb_device: libusb opens /dev/bus/usb/BUS/DEV, renumbered at every
 * replug. A reader through pcscd opens no device; a path outside /dev (the bench's) is no
 * device the service manager can allow: both are said in a comment. 0, or -1 with one
 * sentence in err (a reader driver whose device cannot be told, out too small).
 */
int controller_device_policy(const struct controller_config *cfg, char *out, size_t cap, char *err,
                             size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_DEVICES_H */
