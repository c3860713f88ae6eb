/* backend: server choice and connect. See backend.h. */
#include "backend.h"

#include <errno.h>
#include <sys/socket.h>

int backend_connect(struct listener *listener, const struct cfg_listener *cfg,
                    const struct net_addr **out_server)
{
    const struct net_addr *server = &cfg->servers[listener->next_server % cfg->num_servers];

    listener->next_server = (listener->next_server + 1) % (uint32_t)cfg->num_servers;
    *out_server = server;
    return net_connect_start(server);
}

int backend_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return errno;
    return err;
}
