/*
 * hil/relay.h — an ISO 14443-4 target played by another process (a phone wallet, a relay,
 * a man in the middle), reached over a Unix stream socket.
 *
 * Wire format, both directions: one type byte, a 2-byte big-endian payload length, the
 * payload. The bench connects to the peer's socket and sends:
 *   'I' (empty)     identify: the peer answers 'I' ATQA(2) SAK UIDLEN UID... ATSLEN ATS...
 *   'A' (empty)     activated (selected, RATS done); no answer
 *   'X' payload     one exchange; the peer answers 'X' with its response, or 'S' (silent)
 *   'D' (empty)     deactivated (deselect, release, field off); no answer
 * A peer that does not answer within HIL_RELAY_TIMEOUT_MS, or hangs up, has left the
 * field. docs/hil.md has the same description for writers of other peers.
 */
#ifndef HIL_RELAY_H
#define HIL_RELAY_H

#include "hil/target.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HIL_RELAY_TIMEOUT_MS 250

/* Connect to a peer's socket and make it a target. 0, or -errno. */
int hil_relay_target_connect(const char *socket_path, struct hil_target *out);

#ifdef __cplusplus
}
#endif

#endif /* HIL_RELAY_H */
