/*
 * ctl.c - encore-client's control socket server.
 * Owns:    the listening Unix socket, its thread, and the connections it
 *          accepts (served one at a time; every op is short).
 * Borrows: struct client (read-only, plus counters).
 * Locking: none of its own; calls thread-safe conn/cache/fsops functions.
 */
#include "client/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/cache.h"
#include "client/conn.h"
#include "client/cstate.h"
#include "client/fsops.h"
#include "client/hoard.h"
#include "client/inode.h"
#include "client/reint.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/xalloc.h"

/* A control client that stalls mid-frame is dropped after this. */
#define CTL_IO_TIMEOUT_MS 5000
#define CTL_MAX_SERVERS	  64
#define CTL_MAX_VOLS	  64
/* Pages of CONFLICTS asked per volume and server: bounds one ctl op. */
#define CTL_CONFLICT_PAGES 64

struct ctl {
	struct client *cl;
	int lfd;
	int stop_pipe[2];
	pthread_t thread;
};

static json_object *servers_json(struct client *cl, bool ping)
{
	struct conn_server_info info[CTL_MAX_SERVERS];
	size_t n = conn_check_servers(cl->conn, info, CTL_MAX_SERVERS, ping);
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_int64(info[i].id));
		json_object_object_add(o, "addr", json_object_new_string(info[i].addr));
		json_object_object_add(o, "state",
				       json_object_new_string(info[i].up ? "up" : "down"));
		json_object_object_add(o, "rtt_us", json_object_new_int64((int64_t)info[i].rtt_us));
		/* Smoothed bandwidth of fetches and uploads, KB/s; 0: not measured. */
		json_object_object_add(o, "bw_kbps",
				       json_object_new_int64((int64_t)info[i].bw_kbps));
		json_object_array_add(arr, o);
	}
	return arr;
}

static json_object *ids_json(const struct vsg *v)
{
	json_object *a = json_object_new_array();

	for (uint32_t i = 0; i < v->n && i < VV_MAX; i++)
		json_object_array_add(a, json_object_new_int64(v->ids[i]));
	return a;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* Per volume: id, name, VSG, AVSG (members up now) and state. */
static json_object *volumes_json(struct client *cl)
{
	json_object *vols = json_object_new_array(), *v;
	{
		struct conn_vol_info vi[CTL_MAX_VOLS];
		size_t nv = conn_volumes(cl->conn, vi, CTL_MAX_VOLS);

		for (size_t i = 0; i < nv; i++) {
			v = json_object_new_object();
			add_u64(v, "id", vi[i].id);
			json_object_object_add(v, "name", json_object_new_string(vi[i].name));
			json_object_object_add(v, "vsg", ids_json(&vi[i].vsg));
			json_object_object_add(v, "avsg", ids_json(&vi[i].avsg));
			/* Disconnected operation (next issue) adds emulating and
			 * reintegrating; without it a volume with no member up is
			 * simply unreachable. */
			json_object_object_add(v, "state",
					       json_object_new_string(vi[i].avsg.n > 0
									      ? "connected"
									      : "disconnected"));
			json_object_object_add(v, "servers", servers_json(cl, false));
			reint_vol_json(cl, vi[i].id, v); /* state, cml_records, cml_bytes */
			json_object_array_add(vols, v);
		}
	}
	return vols;
}

static json_object *op_status(struct client *cl)
{
	json_object *r = json_object_new_object();
	json_object *vols = json_object_new_array(), *cache, *ctr;
	struct cache_stats st;
	struct fid root;
	bool have;

	json_object_object_add(r, "realm", json_object_new_string(cl->realm));
	json_object_object_add(r, "mount", json_object_new_string(cl->mount));
	add_u64(r, "pid", (uint64_t)getpid());
	json_object_object_add(r, "servers", servers_json(cl, false));
	pthread_mutex_lock(&cl->root_lock);
	have = cl->have_root;
	root = cl->root_fid;
	pthread_mutex_unlock(&cl->root_lock);
	(void)have;
	(void)root;
	json_object_put(vols);
	json_object_object_add(r, "volumes", volumes_json(cl));
	cache_get_stats(cl->cache, &st);
	cache = json_object_new_object();
	add_u64(cache, "bytes_used", st.bytes_used);
	add_u64(cache, "bytes_limit", st.bytes_limit);
	add_u64(cache, "files", st.files);
	add_u64(cache, "dirty", st.dirty);
	json_object_object_add(r, "cache", cache);
	ctr = json_object_new_object();
	add_u64(ctr, "fetches", atomic_load(&cl->ctr.fetches));
	add_u64(ctr, "fetch_bytes", atomic_load(&cl->ctr.fetch_bytes));
	add_u64(ctr, "stores", atomic_load(&cl->ctr.stores));
	add_u64(ctr, "store_bytes", atomic_load(&cl->ctr.store_bytes));
	add_u64(ctr, "cache_hits", atomic_load(&cl->ctr.cache_hits));
	add_u64(ctr, "cache_misses", atomic_load(&cl->ctr.cache_misses));
	add_u64(ctr, "lookup_hits", atomic_load(&cl->ctr.lookup_hits));
	add_u64(ctr, "cb_breaks", atomic_load(&cl->ctr.cb_breaks));
	add_u64(ctr, "cb_acks", atomic_load(&cl->ctr.cb_acks));
	add_u64(ctr, "conn_losses", atomic_load(&cl->ctr.conn_losses));
	add_u64(ctr, "inodes", itab_count(cl->itab));
	json_object_object_add(r, "counters", ctr);
	return r;
}

struct conflict {
	struct fid fid;
	char path[1100];
	uint32_t servers[VV_MAX];
	uint32_t n_servers;
};

/* Asks every reachable VSG member of every known volume for its conflict
 * table (CONFLICTS, paged by oid cookie) and merges them by fid. */
static json_object *op_conflicts(struct client *cl, uid_t uid, int *err)
{
	struct conn_vol_info vi[CTL_MAX_VOLS];
	size_t nv = conn_volumes(cl->conn, vi, CTL_MAX_VOLS), n = 0, cap = 0;
	struct conflict *cs = NULL;
	json_object *r, *arr;
	int ret = 0, answered = 0;

	*err = 0;
	for (size_t v = 0; v < nv; v++) {
		for (uint32_t k = 0; k < vi[v].avsg.n; k++) {
			uint32_t sid = vi[v].avsg.ids[k];
			char cookie[NAME_MAX_LEN + 1] = "";

			for (int page = 0; page < CTL_CONFLICT_PAGES; page++) {
				struct msg req, rep;
				struct conn_call cc;
				struct rd rd;
				bool eof, any = false;

				msg_init(&req, MSG_CONFLICTS);
				req.cred.uid = uid;
				fid_make_root(&req.fid, vi[v].id);
				snprintf(req.name, sizeof(req.name), "%s", cookie);
				ret = conn_call_server(cl->conn, sid, &req, &rep, &cc);
				if (ret < 0)
					break;
				answered++;
				eof = rep.mflags & RES_EOF;
				rd_init(&rd, rep.data, rep.data_len);
				while (rd.pos < rd.len) {
					struct conflict c;
					uint16_t plen;
					size_t i;

					memset(&c, 0, sizeof(c));
					c.fid.vol = rd_u32(&rd);
					const uint8_t *oid = rd_bytes(&rd, OID_LEN);

					if (oid != NULL)
						memcpy(c.fid.oid, oid, OID_LEN);
					plen = rd_u16(&rd);
					if (rd.err || plen >= sizeof(c.path) ||
					    plen > rd.len - rd.pos) {
						rd.err = -EPROTO;
						break;
					}
					if (plen > 0)
						memcpy(c.path, rd_bytes(&rd, plen), plen);
					c.path[plen] = '\0';
					any = true;
					for (i = 0; i < n; i++) {
						if (fid_eq(&cs[i].fid, &c.fid))
							break;
					}
					if (i == n) {
						if (n == cap) {
							cap = cap ? 2 * cap : 16;
							cs = xrealloc(cs, cap * sizeof(*cs));
						}
						cs[n++] = c;
					}
					if (cs[i].n_servers < VV_MAX)
						cs[i].servers[cs[i].n_servers++] = sid;
					/* Cookie: 32 hex digits of the last oid. */
					for (int b = 0; b < OID_LEN; b++)
						snprintf(cookie + 2 * b, 3, "%02x", c.fid.oid[b]);
				}
				if (rd.err)
					log_warn("ctl", "malformed CONFLICTS reply from server %u",
						 sid);
				conn_done(cl->conn, &cc);
				if (eof || !any || rd.err)
					break;
			}
		}
	}
	if (answered == 0 && nv > 0) {
		/* No server answers: the local/global ones are still known. */
		arr = json_object_new_array();
		reint_conflicts_json(cl, arr);
		free(cs);
		if (json_object_array_length(arr) == 0) {
			json_object_put(arr);
			*err = ret < 0 ? ret : -ENOTCONN;
			return NULL;
		}
		r = json_object_new_object();
		json_object_object_add(r, "conflicts", arr);
		return r;
	}
	r = json_object_new_object();
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object(), *sv = json_object_new_array();
		char fs[FID_STR_LEN], full[PATH_MAX + 1200];
		struct fid rootf;
		bool root_vol;

		pthread_mutex_lock(&cl->root_lock);
		rootf = cl->root_fid;
		root_vol = cl->have_root && rootf.vol == cs[i].fid.vol;
		pthread_mutex_unlock(&cl->root_lock);
		if (root_vol)
			snprintf(full, sizeof(full), "%s/%s%s", cl->mount, cl->realm, cs[i].path);
		else
			snprintf(full, sizeof(full), "%s", cs[i].path);
		fid_fmt(&cs[i].fid, fs);
		json_object_object_add(o, "path", json_object_new_string(full));
		json_object_object_add(o, "vpath", json_object_new_string(cs[i].path));
		json_object_object_add(o, "fid", json_object_new_string(fs));
		add_u64(o, "volume", cs[i].fid.vol);
		for (uint32_t k = 0; k < cs[i].n_servers; k++)
			json_object_array_add(sv, json_object_new_int64(cs[i].servers[k]));
		json_object_object_add(o, "servers", sv);
		json_object_array_add(arr, o);
	}
	reint_conflicts_json(cl, arr); /* local/global, from reintegration */
	json_object_object_add(r, "conflicts", arr);
	free(cs);
	return r;
}

static json_object *vv_json(const struct vv *v)
{
	json_object *a = json_object_new_array();

	for (uint32_t i = 0; i < v->n && i < VV_MAX; i++)
		json_object_array_add(a, json_object_new_int64(v->slot[i]));
	return a;
}

/* "repair": without "keep", every reachable replica's version (GETATTR at
 * each); with "keep": N or "all", REPAIR at one member, then the cached
 * copies are dropped. */
static json_object *op_repair(struct client *cl, json_object *jreq, uint64_t ino, uid_t uid,
			      int *err)
{
	struct conn_vol_info vi[CTL_MAX_VOLS];
	size_t nv = conn_volumes(cl->conn, vi, CTL_MAX_VOLS);
	struct conn_vol_info *vol = NULL;
	json_object *jkeep = NULL, *jka, *r;
	bool keep_all = false;
	struct fid fid;
	int ret;

	*err = fsops_ino_fid(cl, ino, &fid);
	if (*err < 0)
		return NULL;
	for (size_t i = 0; i < nv; i++) {
		if (vi[i].id == fid.vol)
			vol = &vi[i];
	}
	if (vol == NULL || vol->avsg.n == 0) {
		*err = -ENOTCONN;
		return NULL;
	}
	if (json_object_object_get_ex(jreq, "keep_all", &jka) &&
	    json_object_is_type(jka, json_type_boolean))
		keep_all = json_object_get_boolean(jka);
	if (!keep_all && !json_object_object_get_ex(jreq, "keep", &jkeep))
		jkeep = NULL;
	if (!keep_all && (jkeep == NULL || json_object_is_type(jkeep, json_type_null))) {
		json_object *arr = json_object_new_array();

		for (uint32_t k = 0; k < vol->avsg.n; k++) {
			struct msg req, rep;
			struct conn_call cc;
			char ss[64];
			json_object *o;

			msg_init(&req, MSG_GETATTR);
			req.cred.uid = uid;
			req.fid = fid;
			ret = conn_call_server(cl->conn, vol->avsg.ids[k], &req, &rep, &cc);
			if (ret < 0)
				continue;
			o = json_object_new_object();
			add_u64(o, "server", vol->avsg.ids[k]);
			add_u64(o, "size", rep.attr.size);
			add_u64(o, "mtime", (uint64_t)rep.attr.mtime.sec);
			add_u64(o, "mtime_nsec", rep.attr.mtime.nsec);
			snprintf(ss, sizeof(ss), "%016llx.%llu",
				 (unsigned long long)rep.attr.sid.client,
				 (unsigned long long)rep.attr.sid.seq);
			json_object_object_add(o, "storeid", json_object_new_string(ss));
			json_object_object_add(o, "vv", vv_json(&rep.attr.vv));
			json_object_object_add(
				o, "conflict",
				json_object_new_boolean((rep.attr.flags & ATTR_F_CONFLICT) != 0));
			json_object_array_add(arr, o);
			conn_done(cl->conn, &cc);
		}
		r = json_object_new_object();
		char fs[FID_STR_LEN];
		fid_fmt(&fid, fs);
		json_object_object_add(r, "fid", json_object_new_string(fs));
		json_object_object_add(r, "versions", arr);
		return r;
	}
	{
		struct msg req, rep;
		struct conn_call cc;
		struct fid dir;
		char base[NAME_MAX_LEN + 1];
		/* The name goes with the repair (keep-all removes it) and with the
		 * invalidation below: take it first. */
		bool named = fsops_ino_name(cl, ino, base, sizeof(base)) == 0;

		msg_init(&req, MSG_REPAIR);
		req.cred.uid = uid;
		req.fid = fid;
		if (keep_all || (json_object_is_type(jkeep, json_type_string) &&
				 strcmp(json_object_get_string(jkeep), "all") == 0)) {
			req.mflags = REPAIR_KEEP_ALL;
		} else if (json_object_is_type(jkeep, json_type_int) &&
			   json_object_get_int64(jkeep) > 0 &&
			   json_object_get_int64(jkeep) <= UINT32_MAX) {
			req.mflags = REPAIR_KEEP_ONE;
			req.server_id = (uint32_t)json_object_get_int64(jkeep);
		} else {
			*err = -EINVAL;
			return NULL;
		}
		conn_next_storeid(cl->conn, &req.sid);
		/* Ask the kept server itself when it is up: it has the version. */
		uint32_t at = vol->avsg.ids[0];
		for (uint32_t k = 0; k < vol->avsg.n; k++) {
			if (vol->avsg.ids[k] == req.server_id)
				at = req.server_id;
		}
		ret = conn_call_server(cl->conn, at, &req, &rep, &cc);
		if (ret < 0) {
			*err = ret;
			return NULL;
		}
		dir = rep.attr.fid;
		/* A directory's repair answers the directory itself. */
		bool is_dir = S_ISDIR(rep.attr.mode) && fid_eq(&dir, &fid);
		conn_done(cl->conn, &cc);
		/* Our cached copies (and the kernel's) are of a version that may
		 * be gone: drop them as if the servers had broken the callbacks. */
		fsops_on_break(cl, &fid, NULL);
		if (!fid_eq(&dir, &fid))
			fsops_on_break(cl, &dir, NULL);
		fsops_flush_ino(cl, ino);
		r = json_object_new_object();
		add_u64(r, "server", at);
		json_object_object_add(r, "directory", json_object_new_boolean(is_dir));
		if (req.mflags & REPAIR_KEEP_ALL) {
			/* The server names each replica's version NAME.conflict-server<N>
			 * (a directory's: only entries whose names collided). */
			json_object *names = json_object_new_array();
			char nm[NAME_MAX_LEN + 64];

			if (named && !is_dir) {
				for (uint32_t k = 0; k < vol->vsg.n; k++) {
					snprintf(nm, sizeof(nm), "%s.conflict-server%u", base,
						 vol->vsg.ids[k]);
					json_object_array_add(names, json_object_new_string(nm));
				}
			}
			json_object_object_add(r, "names", names);
		}
		return r;
	}
}

static int req_ino(json_object *req, uint64_t *ino)
{
	json_object *v;

	if (!json_object_object_get_ex(req, "ino", &v) || !json_object_is_type(v, json_type_int))
		return -EINVAL;
	*ino = (uint64_t)json_object_get_int64(v);
	return 0;
}

static json_object *error_json(int err)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(err_str(err)));
	json_object_object_add(r, "errno", json_object_new_int(err_to_errno(err)));
	return r;
}

char *ctl_handle_json(struct client *cl, const char *req, size_t len, uid_t uid)
{
	json_tokener *tok = json_tokener_new();
	json_object *jreq = json_tokener_parse_ex(tok, req, (int)len), *jop, *r = NULL;
	const char *op;
	char *out;
	int err = 0;

	json_tokener_free(tok);
	if (jreq == NULL || !json_object_is_type(jreq, json_type_object) ||
	    !json_object_object_get_ex(jreq, "op", &jop) ||
	    !json_object_is_type(jop, json_type_string)) {
		err = -EINVAL;
		goto out;
	}
	op = json_object_get_string(jop);
	if (strcmp(op, "status") == 0) {
		r = op_status(cl);
	} else if (strcmp(op, "check-servers") == 0) {
		r = json_object_new_object();
		json_object_object_add(r, "servers", servers_json(cl, true));
		json_object_object_add(r, "volumes", volumes_json(cl));
	} else if (strcmp(op, "flush") == 0) {
		uint64_t ino;
		int ret;

		err = req_ino(jreq, &ino);
		if (err < 0)
			goto out;
		ret = fsops_flush_ino(cl, ino);
		if (ret < 0) {
			err = ret;
			goto out;
		}
		r = json_object_new_object();
		add_u64(r, "flushed", ret == 1);
		add_u64(r, "busy", ret == 0);
	} else if (strcmp(op, "conflicts") == 0) {
		r = op_conflicts(cl, uid, &err);
		if (err < 0)
			goto out;
	} else if (strcmp(op, "disconnect") == 0 || strcmp(op, "reconnect") == 0 ||
		   strcmp(op, "write-disconnect") == 0) {
		uint64_t ino = 0;
		json_object *jino;

		if (json_object_object_get_ex(jreq, "ino", &jino)) {
			err = req_ino(jreq, &ino);
			if (err < 0)
				goto out;
		}
		err = reint_ctl_force(cl, op, ino);
		if (err < 0)
			goto out;
		/* Sticky across restarts too: saved before the answer, with a
		 * checkpoint of what a restart needs to serve the cache. */
		err = cstate_save_forced(cl->cstate);
		if (err < 0) {
			log_warn("ctl", "cannot save the forced volume states: %s", err_str(err));
			goto out;
		}
		if (cl->cstate != NULL && strcmp(op, "reconnect") != 0) {
			int ret = cstate_checkpoint(cl->cstate);

			if (ret < 0)
				log_warn("ctl", "cannot save the client state: %s", err_str(ret));
		}
		r = json_object_new_object();
	} else if (strcmp(op, "repair") == 0) {
		uint64_t ino = 0;

		r = json_object_new_object();
		if (reint_repair(cl, jreq, req_ino(jreq, &ino) == 0 ? ino : 0, r, &err) == 1)
			goto out; /* a local/global conflict */
		json_object_put(r);
		r = NULL;
		err = req_ino(jreq, &ino);
		if (err < 0)
			goto out;
		r = op_repair(cl, jreq, ino, uid, &err);
		if (err < 0)
			goto out;
	} else if (strncmp(op, "hoard-", 6) == 0) {
		r = hoard_ctl(cl->hoard, op, jreq, uid, &err);
		if (err < 0)
			goto out;
	} else if (strcmp(op, "whereis") == 0) {
		struct fid fid;
		char s[FID_STR_LEN];
		uint64_t ino;
		json_object *srv;

		err = req_ino(jreq, &ino);
		if (err == 0)
			err = fsops_ino_fid(cl, ino, &fid);
		if (err < 0)
			goto out;
		fid_fmt(&fid, s);
		r = json_object_new_object();
		json_object_object_add(r, "fid", json_object_new_string(s));
		add_u64(r, "volume", fid.vol);
		srv = servers_json(cl, false);
		for (size_t i = 0; i < json_object_array_length(srv); i++) {
			json_object *o = json_object_array_get_idx(srv, i);

			json_object_object_del(o, "state");
			json_object_object_del(o, "rtt_us");
			json_object_object_del(o, "bw_kbps");
		}
		json_object_object_add(r, "servers", srv);
	} else {
		err = -EINVAL;
	}
out:
	if (err < 0) {
		json_object_put(r);
		r = error_json(err);
	} else {
		json_object_object_add(r, "ok", json_object_new_boolean(1));
	}
	json_object_put(jreq);
	out = xstrdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
	return out;
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, CTL_IO_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		n = read(fd, (uint8_t *)buf + pos, len - pos);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		pos += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		ssize_t n = send(fd, (const uint8_t *)buf + pos, len - pos, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		pos += (size_t)n;
	}
	return 0;
}

static void serve_conn(struct ctl *ctl, int fd)
{
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	uint8_t hdr[FRAME_HDR_LEN];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0)
		return;
	for (;;) {
		uint16_t type, flags;
		uint32_t reqid;
		long blen;
		uint8_t *body;
		struct msg req, rep;
		struct wr w;
		char *json;
		int ret;

		if (read_full(fd, hdr, sizeof(hdr)) < 0)
			return;
		blen = frame_parse_header(hdr, &type, &flags, &reqid);
		if (blen < 0)
			return;
		body = xmalloc(blen ? (size_t)blen : 1);
		if (read_full(fd, body, (size_t)blen) < 0) {
			free(body);
			return;
		}
		ret = msg_decode(&req, type, flags, reqid, body, (size_t)blen);
		if (ret < 0 || req.type != MSG_CTL || (req.flags & FRAME_F_REPLY)) {
			free(body);
			log_warn("ctl", "malformed control request from uid %u", uc.uid);
			return;
		}
		json = ctl_handle_json(ctl->cl, (const char *)req.data, req.data_len, uc.uid);
		free(body);
		msg_init_reply(&rep, &req, 0);
		rep.data = (const uint8_t *)json;
		rep.data_len = (uint32_t)strlen(json);
		wr_init(&w);
		ret = msg_encode(&w, &rep);
		if (ret == 0)
			ret = write_full(fd, w.buf, w.len);
		wr_release(&w);
		free(json);
		if (ret < 0)
			return;
	}
}

static void *ctl_main(void *arg)
{
	struct ctl *ctl = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = ctl->lfd, .events = POLLIN },
				       { .fd = ctl->stop_pipe[0], .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(ctl->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_conn(ctl, fd);
		close(fd);
	}
	return NULL;
}

int ctl_start(struct client *cl, struct ctl **out)
{
	struct ctl *ctl = xcalloc(1, sizeof(*ctl));
	struct sockaddr_un sa;
	int ret;

	*out = NULL;
	ctl->cl = cl;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(cl->sock_path) >= sizeof(sa.sun_path)) {
		free(ctl);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, cl->sock_path, strlen(cl->sock_path));
	ctl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl->lfd < 0) {
		ret = -errno;
		goto err_free;
	}
	unlink(cl->sock_path);
	if (bind(ctl->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ctl->lfd, 16) < 0) {
		ret = -errno;
		goto err_close;
	}
	/* Anyone may ask; ops that need privilege check SO_PEERCRED. */
	chmod(cl->sock_path, 0666);
	if (pipe2(ctl->stop_pipe, O_CLOEXEC) < 0) {
		ret = -errno;
		goto err_close;
	}
	ret = -pthread_create(&ctl->thread, NULL, ctl_main, ctl);
	if (ret < 0)
		goto err_pipe;
	*out = ctl;
	return 0;

err_pipe:
	close(ctl->stop_pipe[0]);
	close(ctl->stop_pipe[1]);
err_close:
	close(ctl->lfd);
	unlink(cl->sock_path);
err_free:
	free(ctl);
	return ret;
}

void ctl_stop(struct ctl *ctl)
{
	if (ctl == NULL)
		return;
	if (write(ctl->stop_pipe[1], "x", 1) < 0)
		log_debug("ctl", "cannot wake control thread: %s", strerror(errno));
	pthread_join(ctl->thread, NULL);
	close(ctl->stop_pipe[0]);
	close(ctl->stop_pipe[1]);
	close(ctl->lfd);
	unlink(ctl->cl->sock_path);
	free(ctl);
}
