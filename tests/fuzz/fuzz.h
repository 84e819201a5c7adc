/*
 * fuzz: what the libFuzzer targets of tests/fuzz share.  Each target is one file defining
 * LLVMFuzzerTestOneInput() over the real lib/ code; `make fuzz` builds them with clang's
 * -fsanitize=fuzzer,address,undefined and runs them (tests/fuzz/run).
 *
 * Besides the sanitizers, a target checks what the code promises (an invariant, a round
 * trip); FUZZ_CHECK() turns a broken promise into a crash libFuzzer saves as a reproducer.
 */
#ifndef MAILPIPE_FUZZ_H
#define MAILPIPE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's entry points (it declares none for C). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with a message (libFuzzer saves the input) when cond is false. */
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz: %s:%d: check failed: %s: ", __FILE__, __LINE__,     \
				#cond);                                                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
