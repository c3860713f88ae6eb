/* generation: a configuration and what is built from it. See generation.h. */
#include "generation.h"

#include <stdbool.h>
#include <stdlib.h>

#include "backend_group.h"

static atomic_uint num_alive;
static atomic_uint last_id;

unsigned generation_num_alive(void) { return atomic_load(&num_alive); }

struct generation *generation_new(struct config *config, struct tickets *tickets, FILE *errors)
{
    bool failed = false;
    struct generation *gen = calloc(1, sizeof(*gen));
    if (gen == NULL) {
        fprintf(errors, "%s: out of memory\n", config->file);
        config_free(config);
        return NULL;
    }
    atomic_init(&gen->refs, 1);
    atomic_fetch_add(&num_alive, 1);
    gen->config = config;
    gen->tls = calloc(config->num_listeners, sizeof(*gen->tls));
    if (gen->tls == NULL) {
        fprintf(errors, "%s: out of memory\n", config->file);
        goto fail;
    }
    /* Build every listener even after a failure, to report every error. */
    for (size_t i = 0; i < config->num_listeners; i++) {
        if (config->listeners[i].mode == CFG_MODE_REDIRECT)
            continue; /* plain HTTP: no TLS context */
        gen->tls[i] = tls_ctx_new(&config->listeners[i], tickets,
                                  config->session_tickets.lifetime_ms, errors);
        if (gen->tls[i] == NULL)
            failed = true;
    }
    gen->groups = calloc(config->num_backends ? config->num_backends : 1, sizeof(*gen->groups));
    if (gen->groups == NULL) {
        fprintf(errors, "%s: out of memory\n", config->file);
        goto fail;
    }
    for (size_t i = 0; i < config->num_backends && !failed; i++) {
        if ((gen->groups[i] = backend_group_attach(config->backends[i])) == NULL) {
            fprintf(errors, "%s: out of memory\n", config->file);
            failed = true;
        }
    }
    if (failed)
        goto fail;
    gen->id = atomic_fetch_add(&last_id, 1) + 1;
    return gen;

fail:
    generation_unref(gen);
    return NULL;
}

struct generation *generation_ref(struct generation *gen)
{
    atomic_fetch_add_explicit(&gen->refs, 1, memory_order_relaxed);
    return gen;
}

void generation_unref(struct generation *gen)
{
    if (gen == NULL || atomic_fetch_sub_explicit(&gen->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; gen->tls != NULL && i < gen->config->num_listeners; i++)
        tls_ctx_free(gen->tls[i]);
    free(gen->tls);
    for (size_t i = 0; gen->groups != NULL && i < gen->config->num_backends; i++)
        backend_group_detach(gen->groups[i]);
    free(gen->groups);
    config_free(gen->config);
    free(gen);
    atomic_fetch_sub(&num_alive, 1);
}

struct backend_group *generation_group(const struct generation *gen,
                                       const struct cfg_backend *group)
{
    return gen->groups[group->index];
}

void generation_describe(const struct generation *gen, FILE *out)
{
    for (size_t i = 0; i < gen->config->num_listeners; i++) {
        if (gen->tls[i] == NULL) {
            config_describe_redirect(&gen->config->listeners[i], out);
            continue;
        }
        tls_ctx_describe(gen->tls[i], out);
        config_describe_listener(&gen->config->listeners[i], out);
    }
    config_describe_process(gen->config, out);
}
