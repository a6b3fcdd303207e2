/*
 * db.h - small LMDB helpers shared by encore-server (server/meta.c) and the
 * client's table modules: error mapping, environment opening, and the
 * magic/version header every stored record starts with.
 * Owns:    nothing; the MDB_env returned by db_env_open belongs to the caller.
 *
 * Only db.c, server/meta.c and the client's table modules include this
 * header (it pulls in <lmdb.h>; STYLE section 7).
 */
#ifndef COMMON_DB_H
#define COMMON_DB_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "common/wire.h"

/* Default map size: the map is a sparse file and only reserved address
 * space, so a large value costs nothing and postpones MDB_MAP_FULL. */
#define DB_MAP_SIZE_DEFAULT (64ull << 30)

/* Maps an LMDB return code to 0 or a negative errno, exactly once at the db
 * boundary: MDB_NOTFOUND -> -ENOENT, MDB_MAP_FULL -> -ENOSPC,
 * MDB_CORRUPTED/MDB_PAGE_NOTFOUND/MDB_PANIC/MDB_VERSION_MISMATCH/MDB_INVALID
 * -> -EIO with a critical log line, other MDB_* codes -> -EIO, errno values
 * -> -errno. */
int db_err(int rc);

/* Creates the directory path (mkdir -p, 0700) if needed and opens an LMDB
 * environment in it with map_size bytes (0 = DB_MAP_SIZE_DEFAULT), max_dbs
 * named databases and the given mdb_env_open flags (e.g. MDB_NOTLS for a
 * multi-threaded reader). Clears stale reader slots (mdb_reader_check).
 * *out is NULL on failure. Returns 0 or a negative errno. Close with
 * mdb_env_close(). Never open one env twice in one process (lmdb.h Caveats). */
int db_env_open(const char *path, size_t map_size, unsigned max_dbs, unsigned flags, MDB_env **out);

/* Record header: u32 magic, u16 version, written first in every stored
 * value (docs/ondisk.md). */
#define DB_HDR_LEN 6
void db_hdr_put(struct wr *w, uint32_t magic, uint16_t version);
/* Reads and checks the header: a wrong magic or unknown version is -EIO with
 * a critical log naming what (e.g. "vnode"); a short value is -EIO too. */
int db_hdr_check(struct rd *r, uint32_t magic, uint16_t version, const char *what);

#endif /* COMMON_DB_H */
