/*
 * proto/frame.h — length-prefixed framing of the sync link.
 *
 * On the wire: a 4-byte big-endian length N, then N bytes of a protobuf `citypass.Frame`
 * (proto/citypass.proto). The decoder is incremental: feed it whatever the transport
 * delivered (one byte or many frames at once) and take complete messages out. It checks
 * the length prefix before buffering, so a peer cannot make it allocate more than the
 * maximum frame size, and it checks the protocol rules that the schema alone cannot say
 * (one body per frame, one stream per event batch, chunk indices in range).
 */
#ifndef PROTO_FRAME_H
#define PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "citypass.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Length prefix size in bytes. */
#define PROTO_FRAME_HEADER_SIZE 4
/* Default maximum payload: list chunks are at most 256 KiB, so 1 MiB leaves margin. */
#define PROTO_FRAME_DEFAULT_MAX (1024u * 1024u)
/* Largest list chunk a sender puts in one ListUpdate. */
#define PROTO_FRAME_LIST_CHUNK (256u * 1024u)
/* The reasons a statistic may carry: proto/reason.h (proto_reason_known). */

struct proto_frame_decoder;

/*
 * Create a decoder that refuses payloads longer than max_payload bytes (0 means
 * PROTO_FRAME_DEFAULT_MAX). Returns NULL when out of memory.
 */
struct proto_frame_decoder *proto_frame_decoder_new(size_t max_payload);
void proto_frame_decoder_free(struct proto_frame_decoder *dec);

/*
 * Append received bytes. Returns 0, or PROTO_ERR_NOMEM. The decoder keeps at most one
 * frame header plus the bytes of frames not yet taken out.
 */
int proto_frame_decoder_feed(struct proto_frame_decoder *dec, const uint8_t *data, size_t len);

/*
 * Take the next complete message out.
 * Returns 1 and sets *out (free it with proto_frame_free_message()) when a message was
 * decoded; 0 when more bytes are needed; or a negative error:
 *   PROTO_ERR_FRAME_TOO_BIG    the length prefix exceeds the maximum payload
 *   PROTO_ERR_FRAME_EMPTY      the length prefix is zero
 *   PROTO_ERR_FRAME_MALFORMED  the payload is not a valid protobuf Frame
 *   PROTO_ERR_FRAME_NO_BODY    the Frame has no body set
 *   PROTO_ERR_FRAME_INVALID    the body breaks a rule of the protocol
 *   PROTO_ERR_ARG              dec or out is NULL
 * After an error the stream is out of step: the caller must drop the connection. Further
 * calls return the same error.
 */
int proto_frame_next(struct proto_frame_decoder *dec, Citypass__Frame **out);

/* Bytes buffered and not yet decoded (for tests and back-pressure). */
size_t proto_frame_decoder_pending(const struct proto_frame_decoder *dec);

/*
 * Decode exactly one complete frame (length prefix included) from buf. Same return codes
 * as proto_frame_next(), except that 0 means buf holds an incomplete frame and
 * PROTO_ERR_FRAME_INVALID is also returned when bytes follow the frame.
 */
int proto_frame_decode(const uint8_t *buf, size_t len, size_t max_payload, Citypass__Frame **out);

/*
 * Check the protocol rules of a decoded message (see proto_frame_next()). Returns 0 or
 * PROTO_ERR_FRAME_NO_BODY / PROTO_ERR_FRAME_INVALID (PROTO_ERR_ARG for NULL or a message
 * that is not a Frame). Senders call it too, so that nothing
 * is sent that the other side would refuse.
 */
int proto_frame_validate(const Citypass__Frame *msg);

void proto_frame_free_message(Citypass__Frame *msg);

/* Exact size proto_frame_encode() needs for msg, length prefix included. */
size_t proto_frame_encoded_size(const Citypass__Frame *msg);

/*
 * Encode msg with its length prefix into buf (cap bytes). Returns the number of bytes
 * written, or PROTO_ERR_BUFSIZE, PROTO_ERR_FRAME_TOO_BIG (payload over max_payload, 0 for
 * the default), or the error of proto_frame_validate().
 */
long proto_frame_encode(const Citypass__Frame *msg, size_t max_payload, uint8_t *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_FRAME_H */
