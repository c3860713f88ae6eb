/* config_proxy: the PROXY protocol keys of a listener:
 *
 *   backend: {proxy_protocol: v2, proxy_protocol_unique_id: true,
 *             proxy_protocol_crc32c: true}
 *   accept_proxy: {from: ["10.0.0.0/8", "fd00::/8"], timeout: 3s}
 *
 * Kept apart from config.c as config_http.c is; it uses the schema
 * machinery of config_internal.h. */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define ACCEPT_PROXY_DEFAULT_TIMEOUT_MS 3000

void cfg_apply_proxy_protocol(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out)
{
    static const char *const names[] = {"off", "v1", "v2", NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(uint8_t *)out = (uint8_t)chosen;
}

/* apply_from takes one CIDR or a sequence of them. |out| is the struct
 * cfg_accept_proxy. */
static void apply_from(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    struct cfg_accept_proxy *accept = out;
    size_t num = cfg_list_len(ld, field->key, value, true);

    if (num == 0 ||
        (accept->from = cfg_new_array(ld, value, num, sizeof(*accept->from))) == NULL)
        return;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = cfg_list_item(value, i);
        const char *text = cfg_expect_text(ld, field->key, item, "an address or CIDR");
        struct cfg_cidr *cidr = &accept->from[accept->num_from];
        char reason[160];
        bool duplicate = false;

        if (text == NULL)
            continue;
        if (cfg_parse_cidr(text, cidr, reason, sizeof(reason)) != 0) {
            cfg_fail_at(ld, item, "invalid accept_proxy.from entry '%s': %s", text, reason);
            continue;
        }
        for (size_t j = 0; j < accept->num_from && !duplicate; j++) {
            if (cfg_cidr_equal(&accept->from[j], cidr)) {
                cfg_fail_at(ld, item, "duplicate '%s' in 'accept_proxy.from'", text);
                duplicate = true;
            }
        }
        if (!duplicate)
            accept->num_from++;
    }
}

static const struct field accept_proxy_fields[] = {
    {"from", true, apply_from, 0, NULL},
    {"timeout", false, cfg_apply_duration, offsetof(struct cfg_accept_proxy, timeout_ms), NULL},
};
static const struct schema accept_proxy_schema = {"accept_proxy", "in accept_proxy",
                                                  accept_proxy_fields, 2};

void cfg_apply_accept_proxy(struct loader *ld, const struct field *field,
                            const struct ynode *value, void *out)
{
    struct cfg_accept_proxy *accept = out;

    if (!cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        return;
    accept->timeout_ms = ACCEPT_PROXY_DEFAULT_TIMEOUT_MS;
    cfg_apply_mapping(ld, &accept_proxy_schema, value, accept);
}

void cfg_check_proxy_protocol(struct loader *ld, const struct ynode *listener_node,
                              const struct cfg_listener *listener)
{
    static const char *const v2_only[] = {"proxy_protocol_unique_id", "proxy_protocol_crc32c"};
    const struct ynode *backend = yamltree_get(listener_node, "backend");

    if (backend == NULL || yamltree_kind(backend) != YNODE_MAPPING ||
        listener->proxy_protocol == 2)
        return;
    for (size_t i = 0; i < 2; i++) {
        const struct ynode *key = yamltree_get(backend, v2_only[i]);
        if (key != NULL && yamltree_kind(key) == YNODE_SCALAR &&
            strcmp(yamltree_scalar(key), "true") == 0)
            cfg_fail_at(ld, key,
                        "%s needs 'proxy_protocol: v2' in the same backend (only v2 carries "
                        "TLVs)",
                        v2_only[i]);
    }
}
