/*
 * cmd_local.h - the actions of `encore local` that live in their own files
 * (cmd_local_up.c, cmd_local_down.c), and what they share with cmd_local.c.
 */
#ifndef CLI_CMD_LOCAL_H
#define CLI_CMD_LOCAL_H

#include "cli/local.h"

/* `encore local up ...` / `encore local down ...`; argv[0] is the action. */
int cmd_local_up(int argc, char **argv);
int cmd_local_down(int argc, char **argv);

/* Resolves dir_arg and loads its local.json into st. Returns 0, or -errno
 * after printing what is wrong and what to do (no realm there, damaged). */
int local_open(const char *dir_arg, struct local_state *st);

#endif /* CLI_CMD_LOCAL_H */
