/* generation: one loaded configuration with everything built from it (the
 * TLS context of each listener), immutable and shared by every worker.
 *
 * A generation is reference counted: the daemon holds one reference, each
 * worker another. A reload builds a new generation beside the old one and
 * swaps it in only if everything loaded; the old one is freed when its last
 * holder lets go. */
#ifndef TLSTERM_GENERATION_H
#define TLSTERM_GENERATION_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "tls_ctx.h"

struct generation {
    atomic_uint refs;
    unsigned id; /* 1 for the configuration loaded at start, then one per reload */
    struct config *config;
    struct tls_ctx **tls; /* one per listener, in config order; NULL for a
                             redirect listener (plain HTTP) */
    /* One per config->backends entry: the runtime group (backend_group.h),
     * attached here and detached when the generation is freed. */
    struct backend_group **groups;
};

/* generation_group returns the runtime group of |group| (a group of
 * |gen|'s configuration). */
struct backend_group *generation_group(const struct generation *gen,
                                       const struct cfg_backend *group);

/* generation_new builds a generation from |config|, taking ownership of it.
 * It loads every listener's certificates and keys; session tickets use
 * |tickets| (NULL: off), which must outlive the generation. It returns the
 * generation with one reference, or NULL after writing every error as
 * "FILE:LINE:COL: message" to |errors| (and freeing |config|). `--check`
 * stops here, so it checks exactly what the daemon would load. */
struct generation *generation_new(struct config *config, struct tickets *tickets, FILE *errors);

/* generation_num_alive returns how many generations exist in the process:
 * after a reload, old ones live on only while connections use them. */
unsigned generation_num_alive(void);

/* generation_ref adds a reference to |gen| and returns it. Thread-safe. */
struct generation *generation_ref(struct generation *gen);

/* generation_unref drops a reference, freeing |gen| with its configuration
 * on the last one. NULL is allowed. Thread-safe. */
void generation_unref(struct generation *gen);

/* generation_describe writes each listener's effective TLS policy, mode and
 * HTTP settings, then the process-wide settings (config_describe_process),
 * to |out|. */
void generation_describe(const struct generation *gen, FILE *out);

#endif
