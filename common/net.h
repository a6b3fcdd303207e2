/*
 * net.h - socket helpers: parse "host:port" / "unix:/path" addresses,
 * listen, connect with a deadline, set options.
 */
#ifndef COMMON_NET_H
#define COMMON_NET_H

#include <stdint.h>
#include <sys/socket.h>

/* Parses "HOST:PORT", "[v6]:PORT" or "unix:/path". Fills ss/len. 0 or -EINVAL. */
int net_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Creates a listening socket (SO_REUSEADDR, non-blocking, CLOEXEC) bound to
 * addr; *port_out gets the bound port (for port 0). Returns fd or -errno. */
int net_listen(const char *addr, int backlog, uint16_t *port_out);
/* Connects (blocking socket returned, CLOEXEC, TCP_NODELAY) within timeout_ms.
 * Returns fd or -errno (-ETIMEDOUT, -ECONNREFUSED, ...). */
int net_connect(const char *addr, int timeout_ms);
int net_set_nonblock(int fd, int on);
/* Formats the peer address of fd into out ("1.2.3.4:5" or "unix"). */
void net_peer_str(int fd, char *out, size_t len);

#endif /* COMMON_NET_H */
