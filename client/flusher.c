/*
 * flusher.c - encore-client's background retry of failed stores.
 * Owns:    the list of files whose store at close failed (inode
 *          references) and the thread that stores them again.
 * Borrows: struct client (itab; fsops_store_closed does the store).
 * Locking: f->lock protects the list and stop; it is never held while a
 *          store runs (a store takes the inode's io_lock and may wait on
 *          the network).
 */
#include "client/flusher.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "client/client.h"
#include "client/fsops.h"
#include "client/inode.h"
#include "common/err.h"
#include "common/log.h"
#include "common/thread.h"
#include "common/xalloc.h"

struct flusher {
	struct client *cl;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled on stop */
	struct inode **ins;  /* protected by lock: one reference each */
	size_t n, cap;	     /* protected by lock */
	bool stop;	     /* protected by lock */
	pthread_t thread;
};

static bool listed_locked(const struct flusher *f, const struct inode *in)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->ins[i] == in)
			return true;
	return false;
}

/* Appends in with the caller's reference, or drops that reference if in
 * is listed already. */
static void add_locked(struct flusher *f, struct inode *in)
{
	if (listed_locked(f, in)) {
		inode_put(f->cl->itab, in);
		return;
	}
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 16;
		f->ins = xrealloc(f->ins, f->cap * sizeof(*f->ins));
	}
	f->ins[f->n++] = in;
}

void flusher_add(struct flusher *f, struct inode *in)
{
	if (f == NULL)
		return;
	inode_ref(f->cl->itab, in);
	pthread_mutex_lock(&f->lock);
	add_locked(f, in);
	pthread_mutex_unlock(&f->lock);
}

size_t flusher_pending(struct flusher *f)
{
	size_t n;

	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->lock);
	n = f->n;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Sleeps FLUSHER_RETRY_MS unless stopped; false once stopped. Caller
 * holds f->lock. */
static bool wait_round_locked(struct flusher *f)
{
	struct timespec ts;

	deadline_in_ms(&ts, CLOCK_MONOTONIC, FLUSHER_RETRY_MS);
	while (!f->stop) {
		if (pthread_cond_timedwait(&f->cond, &f->lock, &ts) == ETIMEDOUT)
			break;
	}
	return !f->stop;
}

static void *flusher_main(void *arg)
{
	struct flusher *f = arg;
	struct client *cl = f->cl;

	pthread_mutex_lock(&f->lock);
	while (wait_round_locked(f)) {
		struct inode **round = f->ins;
		size_t n = f->n;

		if (n == 0)
			continue;
		f->ins = NULL;
		f->n = f->cap = 0;
		pthread_mutex_unlock(&f->lock);
		for (size_t i = 0; i < n; i++) {
			struct inode *in = round[i];
			int ret = -ECANCELED;

			pthread_mutex_lock(&f->lock);
			if (!f->stop) {
				pthread_mutex_unlock(&f->lock);
				ret = fsops_store_closed(cl, in);
				pthread_mutex_lock(&f->lock);
			}
			if (ret == -EAGAIN || ret == -ECANCELED) {
				add_locked(f, in); /* kept for the next round */
				pthread_mutex_unlock(&f->lock);
				continue;
			}
			pthread_mutex_unlock(&f->lock);
			if (ret == 1)
				log_notice("flusher", "inode %llu: data kept at close now stored",
					   (unsigned long long)in->ino);
			else if (ret < 0)
				log_warn(
					"flusher",
					"inode %llu: store failed for good (%s): kept dirty in the "
					"cache until the file's next close",
					(unsigned long long)in->ino, err_str(ret));
			inode_put(cl->itab, in);
		}
		free(round);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int flusher_start(struct client *cl, struct flusher **out)
{
	struct flusher *f = xcalloc(1, sizeof(*f));
	pthread_condattr_t ca;
	int ret;

	f->cl = cl;
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	ret = thread_start(&f->thread, false, flusher_main, f);
	if (ret < 0) {
		pthread_cond_destroy(&f->cond);
		pthread_mutex_destroy(&f->lock);
		free(f);
		return ret;
	}
	*out = f;
	return 0;
}

void flusher_stop(struct flusher *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	if (f->n > 0)
		log_warn("flusher", "%zu file(s) not stored yet: kept dirty in the cache", f->n);
	for (size_t i = 0; i < f->n; i++)
		inode_put(f->cl->itab, f->ins[i]);
	free(f->ins);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
