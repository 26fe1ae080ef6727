/*
 * layout_internal.h — what layout.c (the gate's tap) and issue.c (the desk) share.
 */
#ifndef CARDLIB_LAYOUT_INTERNAL_H
#define CARDLIB_LAYOUT_INTERNAL_H

#include "cardlib/desfire.h"
#include "cardlib/reader.h"

/* Select the target in the field and open a DESFire session on it (the target is released
 * again on failure). CARDLIB_ERR_NO_CARD when the field is empty. */
int layout_select_card(struct cardlib_reader *reader, struct cardlib_desfire **d,
                       struct cardlib_target_info *info);
void layout_end_session(struct cardlib_reader *reader, struct cardlib_desfire *d);
/* A refused authentication is a key the card does not have under that number: AUTH. */
int layout_auth_error(int rc);

#endif
