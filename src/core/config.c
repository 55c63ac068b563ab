#include "core/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Drop a trailing " ; comment" or " # comment" (a ';' or '#' preceded by
 * whitespace), so values such as URLs with '#' fragments survive. */
static void strip_comment(char *s)
{
    for (char *p = s; *p; p++)
        if ((*p == ';' || *p == '#') && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
}

void config_free(config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        config_section *s = &c->sections[i];
        for (size_t k = 0; k < s->n; k++) {
            free(s->entries[k].key);
            free(s->entries[k].value);
        }
        free(s->entries);
        free(s->name);
    }
    free(c->sections);
    free(c->path);
    free(c);
}

int config_load(const char *path, config **out, ob_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        ob_err_errno(err, errno, "config file %s", path);
        err->code = OB_EUSAGE;
        return -1;
    }
    config *c = ob_xcalloc(1, sizeof *c);
    c->path = ob_xstrdup(path);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    config_section *cur = NULL;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == ';' || *s == '#')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end || *trim(end + 1) != '\0') {
                rc = ob_err_set(err, OB_EUSAGE, "%s:%d: malformed section header", path, lineno);
                break;
            }
            *end = '\0';
            char *name = trim(s + 1);
            if (!*name) {
                rc = ob_err_set(err, OB_EUSAGE, "%s:%d: empty section name", path, lineno);
                break;
            }
            c->sections = ob_xrealloc(c->sections, (c->n + 1) * sizeof *c->sections);
            cur = &c->sections[c->n++];
            memset(cur, 0, sizeof *cur);
            cur->name = ob_xstrdup(name);
            cur->line = lineno;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = ob_err_set(err, OB_EUSAGE, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        if (!cur) {
            rc = ob_err_set(err, OB_EUSAGE, "%s:%d: key outside of any [section]", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *val = eq + 1;
        strip_comment(val);
        val = trim(val);
        if (!*key) {
            rc = ob_err_set(err, OB_EUSAGE, "%s:%d: empty key", path, lineno);
            break;
        }
        cur->entries = ob_xrealloc(cur->entries, (cur->n + 1) * sizeof *cur->entries);
        config_entry *e = &cur->entries[cur->n++];
        e->key = ob_xstrdup(key);
        e->value = ob_xstrdup(val);
        e->line = lineno;
    }
    free(line);
    fclose(f);
    if (rc < 0) {
        config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

const config_section *config_section_get(const config *c, const char *name)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->sections[i].name, name) == 0)
            return &c->sections[i];
    return NULL;
}

const config_entry *config_entry_get(const config_section *s, const char *key)
{
    const config_entry *hit = NULL;
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0)
            hit = &s->entries[i];
    return hit;
}

const char *config_get(const config_section *s, const char *key)
{
    const config_entry *e = config_entry_get(s, key);
    return e ? e->value : NULL;
}
