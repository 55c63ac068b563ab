/*
 * confdiff.h — what changed inside a config file between two snapshots,
 * said without printing secrets (`diff --content`).
 *
 * Config files hold passwords and tokens, so a useful diff names the
 * *keys* whose values changed, appeared or went away, and shows values only
 * when asked.  Recognised lines (after optional indentation):
 *
 *   KEY=VALUE, export KEY=VALUE      (.env, shell)
 *   key = value  under [section]     (INI: the key is "section.key")
 *   key: value                       (YAML-like: nested keys are joined
 *                                     with '.', e.g. "server.port")
 *
 * A key is letters, digits and "_.-".  A key that occurs again in the same
 * file is numbered ("user#2").  Every other non-blank line (comments,
 * section headers, free text) is compared as a whole line and reported by
 * line number only.  Blank lines are ignored.
 *
 * This module compares two byte buffers and reads a file's content from a
 * snapshot; printing is the caller's (cli/cmd_ls.c).  Nothing is kept
 * between calls; the buffers passed to callbacks live until it returns.
 */
#ifndef OB_CONFDIFF_H
#define OB_CONFDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "repo/repo.h"
#include "repo/tree.h"

#define CONFDIFF_MAX_SIZE (1u << 20) /* files larger than this are not compared */

typedef struct confdiff_change {
    char change;         /* '~' changed, '+' added, '-' removed */
    const char *key;     /* qualified key, or NULL for a whole line */
    size_t line;         /* 1-based: in the new version for ~ and +, the old one for - */
    const char *old_val; /* old value (key) or old line; NULL for '+' */
    const char *new_val; /* new value or new line; NULL for '-' */
} confdiff_change;

/* Called for each change: keys first (in the new file's order, then the
 * removed ones in the old file's order), then lines.  Return non-zero to
 * stop (confdiff_text then returns that value). */
typedef int (*confdiff_cb)(const confdiff_change *c, void *ud);

int confdiff_text(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, confdiff_cb cb,
                  void *ud);

/* Binary content (any NUL byte) is not compared line by line. */
int confdiff_is_binary(const uint8_t *p, size_t n);

/* Read a regular file of a snapshot into out (holes as zeros).  OB_EFAIL
 * if it is larger than max bytes.  The caller should ob_wipe the buffer
 * (it may be a secret) before freeing it. */
int confdiff_read(repo *r, const tree_node *n, size_t max, ob_buf *out, ob_err *err);

#endif
