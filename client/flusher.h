/*
 * flusher.h - retries, in the background, the stores that failed when a
 * file was closed (its data kept dirty in the cache: e.g. every replica
 * that has the file stayed away longer than the store waits). Without it
 * the data would reach the servers only at the next open and close.
 */
#ifndef CLIENT_FLUSHER_H
#define CLIENT_FLUSHER_H

#include <stddef.h>

struct client;
struct flusher;
struct inode;

/* How often the files whose store failed are tried again. */
#define FLUSHER_RETRY_MS 2000

/* Starts the retry thread. 0 or -errno. */
int flusher_start(struct client *cl, struct flusher **out);
/* Stops it (waits for a store in progress) and drops what is left: the
 * data stays dirty in the cache, stored at the file's next close. NULL is
 * a no-op. */
void flusher_stop(struct flusher *f);
/* Notes in, whose store just failed with its data kept (takes a reference
 * until the store succeeds or is moot). f NULL is a no-op. */
void flusher_add(struct flusher *f, struct inode *in);
/* Files waiting for a retry. */
size_t flusher_pending(struct flusher *f);

#endif /* CLIENT_FLUSHER_H */
