/*
 * fuzz.h — what every fuzz target in this folder provides.
 *
 * LLVMFuzzerTestOneInput() is the libFuzzer entry point. fuzz_seeds() hands valid inputs,
 * built with the project's own encoders at run time (nothing generated is committed), to
 * whichever driver runs the target: fuzz_driver.c mutates them deterministically for the
 * fuzz-smoke tests, and `make fuzz` writes them out as libFuzzer's starting corpus.
 */
#ifndef CITYPASS_FUZZ_H
#define CITYPASS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef void (*fuzz_emit_fn)(const uint8_t *data, size_t len, void *ctx);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_seeds(fuzz_emit_fn emit, void *ctx);

#endif
