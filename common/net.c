/*
 * net.c - socket helpers: address parsing, listening, connecting with a
 * deadline, peer formatting.
 * Owns:    nothing; returned fds belong to the caller.
 */
#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fsutil.h"

#define UNIX_PREFIX "unix:"

int net_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *port_s, *h;
	size_t hlen;
	char *end;
	unsigned long port;
	struct addrinfo hints, *res = NULL;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(s, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		const char *path = s + strlen(UNIX_PREFIX);
		size_t plen = strlen(path);

		if (plen == 0 || plen >= sizeof(un->sun_path))
			return -EINVAL;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, path, plen + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
		return 0;
	}
	if (s[0] == '[') {
		const char *close_br = strchr(s, ']');
		if (close_br == NULL || close_br[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close_br - h);
		port_s = close_br + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -EINVAL;
		h = s;
		hlen = (size_t)(colon - s);
		port_s = colon + 1;
	}
	if (hlen >= sizeof(host) || port_s[0] < '0' || port_s[0] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno != 0 || *end != '\0' || port > 65535)
		return -EINVAL;
	if (hlen == 0) {
		/* ":PORT" means every IPv4 address. */
		snprintf(host, sizeof(host), "0.0.0.0");
	} else {
		memcpy(host, h, hlen);
		host[hlen] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = s[0] == '[' ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port_s, &hints, &res) != 0 || res == NULL)
		return -EINVAL;
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int net_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (fcntl(fd, F_SETFL, fl) < 0)
		return -errno;
	return 0;
}

/* True if a Unix socket at path is stale: it exists and nobody accepts on it. */
static bool unix_stale(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool stale;

	if (fd < 0)
		return false;
	stale = connect(fd, (const struct sockaddr *)ss, len) < 0 && errno == ECONNREFUSED;
	close(fd);
	return stale;
}

int net_listen(const char *addr, int backlog, uint16_t *port_out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, ret, one = 1;

	ret = net_parse_addr(addr, &ss, &len);
	if (ret < 0)
		return ret;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (ss.ss_family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		ret = -errno;
		/* A socket file left by a crashed daemon is removed, a live one is not. */
		if (ret != -EADDRINUSE || ss.ss_family != AF_UNIX || !unix_stale(&ss, len))
			goto err_close;
		unlink(((struct sockaddr_un *)&ss)->sun_path);
		if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
			ret = -errno;
			goto err_close;
		}
	}
	if (listen(fd, backlog) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (port_out != NULL) {
		*port_out = 0;
		if (ss.ss_family != AF_UNIX) {
			len = sizeof(ss);
			if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
				ret = -errno;
				goto err_close;
			}
			if (ss.ss_family == AF_INET)
				*port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			else
				*port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	return fd;

err_close:
	close(fd);
	return ret;
}

int net_connect(const char *addr, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, ret, one = 1;

	ret = net_parse_addr(addr, &ss, &len);
	if (ret < 0)
		return ret;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			ret = -errno;
			goto err_close;
		}
		uint64_t deadline =
			now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
		for (;;) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int wait_ms = -1;
			if (timeout_ms >= 0) {
				uint64_t now = now_ns();
				if (now >= deadline) {
					ret = -ETIMEDOUT;
					goto err_close;
				}
				wait_ms = (int)((deadline - now + 999999u) / 1000000u);
			}
			int n = poll(&pfd, 1, wait_ms);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				ret = -errno;
				goto err_close;
			}
			if (n > 0)
				break;
		}
		int soerr = 0;
		socklen_t slen = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0) {
			ret = -errno;
			goto err_close;
		}
		if (soerr != 0) {
			ret = -soerr;
			goto err_close;
		}
	}
	ret = net_set_nonblock(fd, 0);
	if (ret < 0)
		goto err_close;
	if (ss.ss_family != AF_UNIX &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		ret = -errno;
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return ret;
}

void net_peer_str(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];

	if (len == 0)
		return;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(out, len, "?");
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
	} else {
		snprintf(out, len, "unix");
	}
}
