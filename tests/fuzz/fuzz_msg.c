//  fuzz_msg.c - libFuzzer target: herd_msg_decode on arbitrary frames.
//
//  The input's first byte picks the channel; the rest is cut at 0xff bytes
//  into frames (so the fuzzer can reach every frame count and size). For
//  every channel the decoder must either fail with a reason or give a
//  message that encodes back to the same frames (after the routing frame,
//  for a ROUTER channel, and with the envelope of the herd "herd").

#include "../../common/herd_msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ORACLE(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf (stderr, "fuzz_msg: oracle failed at line %d: %s\n", __LINE__,      \
                     #cond);                                                            \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    herd_msg_channel_t channel = (herd_msg_channel_t) (data[0] % HERD_MSG_CHANNELS);
    zmsg_t *msg = zmsg_new ();
    size_t start = 1;
    for (size_t i = 1; i <= size && zmsg_size (msg) < 16; i++)
        if (i == size || data[i] == 0xff) {
            zmsg_addmem (msg, data + start, i - start);
            start = i + 1;
        }
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX];
    reason[0] = 0;
    int rc = herd_msg_decode (&in, msg, channel, "herd", reason, sizeof (reason));
    S_ORACLE (rc == 0 || (rc == -1 && strlen (reason) > 0));
    if (rc == 0 && in.id != HERD_MSG_ID_KVSYNC) {
        in.herd = "herd";
        zmsg_t *again = herd_msg_encode (&in);
        S_ORACLE (zmsg_size (again) == zmsg_size (msg));
        zframe_t *a = zmsg_first (again);
        for (zframe_t *b = zmsg_first (msg); b; b = zmsg_next (msg), a = zmsg_next (again))
            S_ORACLE (zframe_eq (a, b));
        zmsg_destroy (&again);
    }
    else
    if (rc == 0) {
        herd_msg_bytes_t line;
        size_t lines = 0;
        while (herd_msg_next_line (&in, &line))
            lines++;
        S_ORACLE (lines + 2 == zmsg_size (msg));
    }
    zmsg_destroy (&msg);
    return 0;
}
