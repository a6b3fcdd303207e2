/*
 * db.c - LMDB helpers: the one mapping of LMDB errors to errno, opening an
 * environment, and record headers.
 * Owns:    nothing; envs belong to their callers.
 * Format:  docs/ondisk.md (record header).
 */
#include "common/db.h"

#include <errno.h>

#include "common/fsutil.h"
#include "common/log.h"

int db_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_PANIC:
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		log_msg(LOG_CRIT, "db", "lmdb failure: %s", mdb_strerror(rc));
		return -EIO;
	default:
		break;
	}
	if (rc > 0 && rc < 4096)
		return -rc;
	log_err("db", "lmdb error: %s", mdb_strerror(rc));
	return -EIO;
}

int db_env_open(const char *path, size_t map_size, unsigned max_dbs, unsigned flags, MDB_env **out)
{
	MDB_env *env = NULL;
	int ret, dead = 0;

	*out = NULL;
	ret = fs_mkdirs(path, 0700);
	if (ret < 0)
		return ret;
	ret = db_err(mdb_env_create(&env));
	if (ret < 0)
		return ret;
	ret = db_err(mdb_env_set_mapsize(env, map_size == 0 ? DB_MAP_SIZE_DEFAULT : map_size));
	if (ret < 0)
		goto err_close;
	ret = db_err(mdb_env_set_maxdbs(env, max_dbs));
	if (ret < 0)
		goto err_close;
	ret = db_err(mdb_env_open(env, path, flags, 0600));
	if (ret < 0)
		goto err_close;
	/* Reader slots of processes killed with -9 would pin old pages forever. */
	ret = db_err(mdb_reader_check(env, &dead));
	if (ret < 0)
		goto err_close;
	if (dead > 0)
		log_info("db", "cleared %d stale reader slots in '%s'", dead, path);
	*out = env;
	return 0;

err_close:
	mdb_env_close(env);
	return ret;
}

void db_hdr_put(struct wr *w, uint32_t magic, uint16_t version)
{
	wr_u32(w, magic);
	wr_u16(w, version);
}

int db_hdr_check(struct rd *r, uint32_t magic, uint16_t version, const char *what)
{
	uint32_t m = rd_u32(r);
	uint16_t v = rd_u16(r);

	if (r->err != 0) {
		log_msg(LOG_CRIT, "db", "short %s record", what);
		return -EIO;
	}
	if (m != magic || v != version) {
		log_msg(LOG_CRIT, "db", "bad %s record header: magic %#x version %u", what,
			(unsigned)m, (unsigned)v);
		return -EIO;
	}
	return 0;
}
