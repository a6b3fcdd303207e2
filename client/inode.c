/*
 * inode.c - encore-client's FUSE inode table.
 * Owns:    every struct inode and the two hash tables (by ino, by fid).
 * Borrows: nothing.
 * Locking: t->lock protects the tables, nlookup, refs and next_*; see
 *          inode.h for the lock order.
 */
#include "client/inode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fid.h"
#include "common/xalloc.h"

/* Power of two; chains stay short up to about a million live inodes. */
#define ITAB_BUCKETS (1u << 16)

struct itab {
	pthread_mutex_t lock;
	uint64_t next_ino;     /* protected by lock */
	size_t count;	       /* protected by lock */
	struct inode **by_ino; /* protected by lock */
	struct inode **by_fid; /* protected by lock */
	itab_free_fn free_fn;  /* set once before use; may be NULL */
	void *free_arg;
};

static size_t hash_ino(uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 48) & (ITAB_BUCKETS - 1);
}

static size_t hash_fid(const struct fid *f)
{
	uint64_t h = f->vol;

	for (size_t i = 0; i < OID_LEN; i++)
		h = h * 1099511628211ull ^ f->oid[i];
	return (size_t)(h ^ (h >> 29)) & (ITAB_BUCKETS - 1);
}

static struct inode *inode_alloc(uint64_t ino, const struct fid *fid)
{
	struct inode *in = xcalloc(1, sizeof(*in));

	in->ino = ino;
	if (fid != NULL)
		in->fid = *fid;
	in->fd = -1;
	pthread_mutex_init(&in->lock, NULL);
	pthread_mutex_init(&in->io_lock, NULL);
	return in;
}

static void inode_destroy(struct inode *in)
{
	size_t i;

	if (in->fd >= 0)
		close(in->fd);
	free(in->ents);
	free(in->learned);
	for (i = 0; i < in->n_knames; i++)
		free(in->knames[i]);
	free(in->knames);
	free(in->target);
	free(in->name);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->io_lock);
	free(in);
}

static void link_locked(struct itab *t, struct inode *in)
{
	size_t hi = hash_ino(in->ino);

	in->next_ino = t->by_ino[hi];
	t->by_ino[hi] = in;
	if (in->ino != INODE_TOP) {
		size_t hf = hash_fid(&in->fid);

		in->next_fid = t->by_fid[hf];
		t->by_fid[hf] = in;
	}
	t->count++;
}

static void unlink_locked(struct itab *t, struct inode *in)
{
	struct inode **pp;

	for (pp = &t->by_ino[hash_ino(in->ino)]; *pp != NULL; pp = &(*pp)->next_ino) {
		if (*pp == in) {
			*pp = in->next_ino;
			break;
		}
	}
	if (in->ino != INODE_TOP) {
		for (pp = &t->by_fid[hash_fid(&in->fid)]; *pp != NULL; pp = &(*pp)->next_fid) {
			if (*pp == in) {
				*pp = in->next_fid;
				break;
			}
		}
	}
	t->count--;
}

struct itab *itab_new(void)
{
	struct itab *t = xcalloc(1, sizeof(*t));
	struct inode *top;

	pthread_mutex_init(&t->lock, NULL);
	t->by_ino = xcalloc(ITAB_BUCKETS, sizeof(*t->by_ino));
	t->by_fid = xcalloc(ITAB_BUCKETS, sizeof(*t->by_fid));
	t->next_ino = INODE_TOP + 1;
	top = inode_alloc(INODE_TOP, NULL);
	top->nlookup = 1; /* the kernel never forgets the root */
	link_locked(t, top);
	return t;
}

void itab_free(struct itab *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < ITAB_BUCKETS; i++) {
		struct inode *in = t->by_ino[i];

		while (in != NULL) {
			struct inode *next = in->next_ino;

			inode_destroy(in);
			in = next;
		}
	}
	free(t->by_ino);
	free(t->by_fid);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct inode *find_ino_locked(struct itab *t, uint64_t ino)
{
	struct inode *in;

	for (in = t->by_ino[hash_ino(ino)]; in != NULL; in = in->next_ino)
		if (in->ino == ino)
			return in;
	return NULL;
}

static struct inode *find_fid_locked(struct itab *t, const struct fid *fid)
{
	struct inode *in;

	for (in = t->by_fid[hash_fid(fid)]; in != NULL; in = in->next_fid)
		if (fid_eq(&in->fid, fid))
			return in;
	return NULL;
}

struct inode *inode_get_ino(struct itab *t, uint64_t ino)
{
	struct inode *in;

	pthread_mutex_lock(&t->lock);
	in = find_ino_locked(t, ino);
	if (in != NULL)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

struct inode *inode_get_fid(struct itab *t, const struct fid *fid)
{
	struct inode *in;

	pthread_mutex_lock(&t->lock);
	in = find_fid_locked(t, fid);
	if (in != NULL)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

struct inode *inode_get_or_create(struct itab *t, const struct fid *fid)
{
	struct inode *in;

	pthread_mutex_lock(&t->lock);
	in = find_fid_locked(t, fid);
	if (in == NULL) {
		in = inode_alloc(t->next_ino++, fid);
		link_locked(t, in);
	}
	in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

void inode_ref(struct itab *t, struct inode *in)
{
	pthread_mutex_lock(&t->lock);
	in->refs++;
	pthread_mutex_unlock(&t->lock);
}

static bool maybe_unlink_locked(struct itab *t, struct inode *in)
{
	if (in->refs != 0 || in->nlookup != 0 || in->ino == INODE_TOP)
		return false;
	unlink_locked(t, in);
	return true;
}

void inode_put(struct itab *t, struct inode *in)
{
	bool dead;

	if (in == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	ASSERT(in->refs > 0);
	in->refs--;
	dead = maybe_unlink_locked(t, in);
	pthread_mutex_unlock(&t->lock);
	if (dead) {
		if (t->free_fn != NULL)
			t->free_fn(t->free_arg, in);
		inode_destroy(in);
	}
}

void inode_lookup_inc(struct itab *t, struct inode *in)
{
	pthread_mutex_lock(&t->lock);
	in->nlookup++;
	pthread_mutex_unlock(&t->lock);
}

void inode_forget(struct itab *t, uint64_t ino, uint64_t n)
{
	struct inode *in;
	bool dead = false;

	pthread_mutex_lock(&t->lock);
	in = find_ino_locked(t, ino);
	if (in != NULL) {
		in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
		dead = maybe_unlink_locked(t, in);
	}
	pthread_mutex_unlock(&t->lock);
	if (dead) {
		if (t->free_fn != NULL)
			t->free_fn(t->free_arg, in);
		inode_destroy(in);
	}
}

void itab_foreach(struct itab *t, void (*fn)(void *arg, struct inode *in), void *arg)
{
	struct inode **all;
	size_t n = 0, cap;

	pthread_mutex_lock(&t->lock);
	cap = t->count;
	all = xcalloc(cap ? cap : 1, sizeof(*all));
	for (size_t i = 0; i < ITAB_BUCKETS; i++) {
		for (struct inode *in = t->by_ino[i]; in != NULL && n < cap; in = in->next_ino) {
			in->refs++;
			all[n++] = in;
		}
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		fn(arg, all[i]);
		inode_put(t, all[i]);
	}
	free(all);
}

size_t itab_count(struct itab *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct dirent_w *inode_ents_dup(const struct dirent_w *ents, size_t n)
{
	struct dirent_w *c = xcalloc(n ? n : 1, sizeof(*c));

	if (n > 0) /* ents may be NULL for an empty directory */
		memcpy(c, ents, n * sizeof(*c));
	return c;
}

/* The entry named name among v[0..n); NULL if none. */
static struct dirent_w *ents_find(struct dirent_w *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static void forget_learned_locked(struct inode *in)
{
	free(in->learned);
	in->learned = NULL;
	in->n_learned = 0;
}

void inode_set_listing_locked(struct inode *in, struct dirent_w *ents, size_t n)
{
	free(in->ents);
	in->ents = ents;
	in->n_ents = n;
	in->list_valid = true;
	forget_learned_locked(in); /* the whole listing says more */
}

void inode_drop_listing_locked(struct inode *in)
{
	free(in->ents);
	in->ents = NULL;
	in->n_ents = 0;
	in->list_valid = false;
	forget_learned_locked(in);
}

void inode_learn_locked(struct inode *in, const struct dirent_w *d)
{
	struct dirent_w *known = ents_find(in->learned, in->n_learned, d->name);

	if (known != NULL) {
		*known = *d;
		return;
	}
	if (in->n_learned >= INODE_LEARNED_MAX)
		return;
	/* Grows by doubling: the capacity is the next power of two. */
	if ((in->n_learned & (in->n_learned - 1)) == 0)
		in->learned =
			xrealloc(in->learned, (in->n_learned ? 2 * in->n_learned : 1) * sizeof(*d));
	in->learned[in->n_learned++] = *d;
}

const struct dirent_w *inode_find_learned_locked(struct inode *in, const char *name)
{
	return ents_find(in->learned, in->n_learned, name);
}

bool inode_add_kname_locked(struct inode *in, const char *name)
{
	for (size_t i = 0; i < in->n_knames; i++)
		if (strcmp(in->knames[i], name) == 0)
			return true;
	if (in->n_knames >= INODE_KNAMES_MAX)
		return false;
	if (in->n_knames == in->cap_knames) {
		in->cap_knames = in->cap_knames ? 2 * in->cap_knames : 16;
		in->knames = xrealloc(in->knames, in->cap_knames * sizeof(*in->knames));
	}
	in->knames[in->n_knames++] = xstrdup(name);
	return true;
}

void inode_take_knames_locked(struct inode *in, char ***names, size_t *n)
{
	*names = in->knames;
	*n = in->n_knames;
	in->knames = NULL;
	in->n_knames = in->cap_knames = 0;
}

const struct dirent_w *inode_find_ent_locked(struct inode *in, const char *name)
{
	return ents_find(in->ents, in->n_ents, name);
}

void inode_set_name_locked(struct inode *in, uint64_t parent_ino, const char *name)
{
	if (in->name != NULL && in->parent_ino == parent_ino && strcmp(in->name, name) == 0)
		return;
	free(in->name);
	in->name = xstrdup(name);
	in->parent_ino = parent_ino;
}

void inode_path(struct itab *t, struct inode *in, const char *realm, char *out, size_t len)
{
	/* Bounded: a path deeper than this is not worth a log line. */
	enum { DEPTH_MAX = 64 };
	char *parts[DEPTH_MAX];
	size_t n = 0, pos = 0;
	struct inode *cur = in;
	bool complete = false;

	out[0] = '\0';
	inode_ref(t, cur);
	while (n < DEPTH_MAX) {
		uint64_t parent;
		struct inode *next;

		pthread_mutex_lock(&cur->lock);
		if (fid_is_root(&cur->fid)) {
			complete = true;
			pthread_mutex_unlock(&cur->lock);
			break;
		}
		if (cur->name == NULL) {
			pthread_mutex_unlock(&cur->lock);
			break;
		}
		parts[n++] = xstrdup(cur->name);
		parent = cur->parent_ino;
		pthread_mutex_unlock(&cur->lock);
		next = inode_get_ino(t, parent);
		inode_put(t, cur);
		cur = next;
		if (cur == NULL)
			break;
	}
	inode_put(t, cur);
	if (complete) {
		int w = snprintf(out, len, "/%s", realm);

		pos = w < 0 ? 0 : (size_t)w;
		for (size_t i = n; i > 0 && pos < len; i--) {
			w = snprintf(out + pos, len - pos, "/%s", parts[i - 1]);
			pos += w < 0 ? 0 : (size_t)w;
		}
		if (pos >= len)
			out[0] = '\0';
	}
	for (size_t i = 0; i < n; i++)
		free(parts[i]);
}

void itab_set_free_hook(struct itab *t, itab_free_fn fn, void *arg)
{
	t->free_fn = fn;
	t->free_arg = arg;
}
