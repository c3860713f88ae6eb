/* config_source: a listener's backend.source, the address its backend
 * connections come from:
 *
 *   backend:
 *     servers: ["10.0.2.2:8080"]
 *     source: client      # or proxy (default)
 *
 * With "client" a backend connection is bound to the client's own IP address
 * (IP_TRANSPARENT, the port left to the kernel), so the backend sees who
 * connected without any header. The address of a connection is that of its
 * client, so the family is the client's, and the client's family is that of
 * the listen address it reached (IPv6 listen sockets are IPV6_V6ONLY). At
 * run time a client is sent to a server of its own family (backend_conn.h),
 * and the load checks here make sure there always is one and that every
 * server can be reached: each listen address's family has a server, each
 * server's family has a listen address, and no server is a unix socket. */
#include <string.h>
#include <sys/socket.h>

#include "config_internal.h"

void cfg_apply_backend_source(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out)
{
    static const char *const names[] = {
        [CFG_BACKEND_SOURCE_PROXY] = "proxy", [CFG_BACKEND_SOURCE_CLIENT] = "client", NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum cfg_backend_source *)out = (enum cfg_backend_source)chosen;
}

static const char *family_name(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }

static bool listens_on(const struct cfg_listener *listener, int family)
{
    for (size_t i = 0; i < listener->num_listen; i++)
        if (listener->listen[i].addr.ss.ss_family == family)
            return true;
    return false;
}

static bool serves(const struct cfg_listener *listener, int family)
{
    for (size_t i = 0; i < listener->num_servers; i++)
        if (listener->servers[i].ss.ss_family == family)
            return true;
    return false;
}

void cfg_check_source(struct loader *ld, const struct ynode *listener_node,
                      const struct cfg_listener *listener)
{
    const struct ynode *servers =
        yamltree_get(yamltree_get(listener_node, "backend"), "servers");
    char text[NET_ADDR_TEXT_MAX];
    bool unix_server = false;

    if (listener->backend_source != CFG_BACKEND_SOURCE_CLIENT || servers == NULL)
        return;
    /* The servers are matched to their nodes by position: only when every
     * one of them parsed (otherwise the load fails already). */
    size_t num_written =
        yamltree_kind(servers) == YNODE_SEQUENCE ? yamltree_num_items(servers) : 1;
    if (listener->num_servers != num_written)
        return;
    for (size_t i = 0; i < listener->num_servers; i++) {
        const struct net_addr *server = &listener->servers[i];
        const struct ynode *item = cfg_list_item(servers, i);
        int family = server->ss.ss_family;

        net_addr_format(server, text, sizeof(text));
        unix_server = unix_server || family == AF_UNIX;
        if (family == AF_UNIX)
            cfg_fail_at(ld, item,
                        "backend server '%s' is a unix socket, but backend.source: client "
                        "connects from the client's IP address; use a TCP address, or "
                        "source: proxy",
                        text);
        else if (listener->num_listen > 0 && !listens_on(listener, family))
            cfg_fail_at(ld, item,
                        "backend server '%s' is %s, but no listen address of listener '%s' "
                        "is: with backend.source: client a server takes clients of its own "
                        "family only; listen on an %s address too, or use source: proxy",
                        text, family_name(family), listener->name ? listener->name : "?",
                        family_name(family));
    }
    /* A family without servers because they are unix sockets: said above. */
    for (size_t i = 0; !unix_server && i < listener->num_listen; i++) {
        const struct cfg_listen_addr *listen = &listener->listen[i];
        int family = listen->addr.ss.ss_family;

        if (serves(listener, family))
            continue;
        cfg_error(ld->errors, &listen->pos,
                  "listen address '%s' takes %s clients, but no backend server is %s: with "
                  "backend.source: client a client is sent to a server of its own family; "
                  "add an %s server, or use source: proxy",
                  net_addr_format(&listen->addr, text, sizeof(text)), family_name(family),
                  family_name(family), family_name(family));
        ld->num_errors++;
    }
}

const struct cfg_listener *config_needs_net_admin(const struct config *config)
{
    for (size_t i = 0; i < config->num_listeners; i++)
        if (config->listeners[i].backend_source == CFG_BACKEND_SOURCE_CLIENT)
            return &config->listeners[i];
    return NULL;
}
