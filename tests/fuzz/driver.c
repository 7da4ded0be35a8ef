/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * driver.c: runs a harness over files, for builds without libFuzzer (gcc).
 * Arguments are files or directories (one level); prints TAP, one test per
 * input, so meson shows which input broke. A crash ends the run: ASan's or
 * the check's report names the input in the line printed before.
 */
#include "fuzz.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

static int n_run;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;

    if (!f)
        return -1;
    if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) < 0) {
        fclose(f);
        return -1;
    }
    /* An exact-size heap copy, so ASan sees reads past the input's end. */
    buf = malloc(len ? len : 1);
    if (!buf || fread(buf, 1, len, f) != (size_t)len) {
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    printf("# %s\n", path);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    printf("ok %d - %s\n", ++n_run, path);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    int r = 0;

    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    d = opendir(path);
    if (!d)
        return -1;
    /* Sorted, so test numbers stay put between runs. */
    while ((e = readdir(d))) {
        char **nn;

        if (e->d_name[0] == '.')
            continue;
        nn = realloc(names, (n + 1) * sizeof(*names));
        if (!nn)
            break;
        names = nn;
        if (asprintf(&names[n], "%s/%s", path, e->d_name) < 0)
            break;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp);
    for (size_t i = 0; i < n; i++) {
        if (run_file(names[i]) < 0)
            r = -1;
        free(names[i]);
    }
    free(names);
    return r;
}

int main(int argc, char **argv)
{
    int failed = 0;

    /* The empty input first: every harness must cope with it. */
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    printf("ok %d - empty input\n", ++n_run);
    for (int i = 1; i < argc; i++) {
        if (run_path(argv[i]) < 0) {
            printf("not ok %d - cannot read %s\n", ++n_run, argv[i]);
            failed = 1;
        }
    }
    printf("1..%d\n", n_run);
    return failed;
}
