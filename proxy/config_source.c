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

static bool serves(const struct cfg_backend *group, int family)
{
    for (size_t i = 0; i < group->num_servers; i++)
        for (size_t k = 0; k < group->servers[i].num_addrs; k++)
            if (group->servers[i].addrs[k].ss.ss_family == family)
                return true;
    return false;
}

/* cfg_check_source reads the listener's group, named or inline: a group
 * shared by several listeners is checked against each one's listen
 * addresses. */
void cfg_check_source(struct loader *ld, const struct ynode *listener_node,
                      const struct cfg_listener *listener)
{
    const struct cfg_backend *group = listener->backend;
    char text[NET_ADDR_TEXT_MAX];
    bool unix_server = false;
    (void)listener_node;

    if (group == NULL || group->source != CFG_BACKEND_SOURCE_CLIENT)
        return;
    /* A server that did not parse is reported already; its family is not
     * known, so the family checks would only add noise. */
    for (size_t i = 0; i < group->num_servers; i++)
        if (group->servers[i].num_addrs == 0)
            return;
    for (size_t i = 0; i < group->num_servers; i++) {
        const struct cfg_server *entry = &group->servers[i];
        for (size_t k = 0; k < entry->num_addrs; k++) {
            const struct net_addr *server = &entry->addrs[k];
            int family = server->ss.ss_family;

            net_addr_format(server, text, sizeof(text));
            unix_server = unix_server || family == AF_UNIX;
            if (family == AF_UNIX) {
                cfg_error(ld->errors, &entry->pos,
                          "backend server '%s' is a unix socket, but backend.source: client "
                          "connects from the client's IP address; use a TCP address, or "
                          "source: proxy",
                          text);
                ld->num_errors++;
            } else if (listener->num_listen > 0 && !listens_on(listener, family)) {
                cfg_error(ld->errors, &entry->pos,
                          "backend server '%s' is %s, but no listen address of listener '%s' "
                          "is: with backend.source: client a server takes clients of its own "
                          "family only; listen on an %s address too, or use source: proxy",
                          text, family_name(family), listener->name ? listener->name : "?",
                          family_name(family));
                ld->num_errors++;
            }
        }
    }
    /* A family without servers because they are unix sockets: said above. */
    for (size_t i = 0; !unix_server && i < listener->num_listen; i++) {
        const struct cfg_listen_addr *listen = &listener->listen[i];
        int family = listen->addr.ss.ss_family;

        if (serves(group, family))
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

static bool from_client(const struct cfg_backend *group)
{
    return group != NULL && group->source == CFG_BACKEND_SOURCE_CLIENT;
}

/* Only source: client binds to the client's address. A group that sends a
 * PROXY header keeps its connections per client too (cfg_backend_per_client)
 * but connects from the proxy's own address: no capability for it. */
const struct cfg_listener *config_needs_net_admin(const struct config *config)
{
    for (size_t i = 0; i < config->num_listeners; i++) {
        const struct cfg_listener *listener = &config->listeners[i];

        if (from_client(listener->backend))
            return listener;
        for (size_t k = 0; k < listener->num_routes; k++)
            if (from_client(listener->routes[k].backend))
                return listener;
    }
    return NULL;
}
