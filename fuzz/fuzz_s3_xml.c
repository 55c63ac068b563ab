/*
 * fuzz_s3_xml.c — what an S3 server sends back (storage/storage_s3.c): the
 * ListObjectsV2 page parser and the error/field extraction used on every
 * other answer (<Code>, <Message>, <UploadId>, DeleteObjects' <Error>
 * entries).  The server, or anything between us and it, controls these
 * bytes completely; they are not NUL-terminated, and the parser must never
 * read past len (the harness passes an exact-size heap copy so ASan sees
 * any overread).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "storage/storage_s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = ob_xmalloc(size ? size : 1);
    memcpy(xml, data, size);
    storage_s3_list_page page;
    ob_err err = OB_ERR_INIT;
    if (storage_s3_parse_list(xml, size, &page, &err) == 0) {
        for (size_t i = 0; i < page.n; i++)
            if (!page.keys[i] || !page.keys[i][0])
                __builtin_trap(); /* the parser refuses empty keys */
        storage_s3_list_page_free(&page);
    }
    ob_err_clear(&err);
    static const char *const tags[] = {"Code", "Message", "UploadId", "Key", "Error"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        free(storage_s3_xml_text(xml, size, tags[i]));
    ob_buf dec = OB_BUF_INIT;
    if (storage_s3_xml_decode(xml, size, &dec) == 0 && memchr(dec.data, 0, dec.len))
        __builtin_trap(); /* decoding never yields a NUL */
    ob_buf_free(&dec);
    free(xml);
    return 0;
}
