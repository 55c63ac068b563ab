# bench/scenario_future.sh — what the harness does not measure yet.
# Sourced by bench/run.sh; defines no scenario: every scenario (A B C D E)
# now has its own file (E, S3: scenario_s3.sh).  New work goes in a file of
# its own, measured with `measure` (lib.sh) the way A and C are.
#
# Still to add:
#   - the scale targets of issue 10: a synthetic 10-million-blob repository
#     (open + dedup a backup with resident index memory <= 64 bytes per
#     blob) and a backup of 1 million small files (memory not growing with
#     the file count beyond the index);
#   - B (physical) over S3: pgBackRest repo1-type=s3 against the same
#     server as E, which pgBackRest reaches only over HTTPS (S3rver with
#     S3_TLS_KEY/S3_TLS_CERT and a throwaway self-signed certificate,
#     repo1-storage-verify-tls=n, repo1-s3-uri-style=path), against
#     opsbackup's physical backups to an s3:// repository — scenario_B's
#     repositories and archive_commands parameterised the way c_run and
#     a_run are by REPO_STORE;
#   - gen_attachments.py's `mutate --mutation 2` (the file-tree counterpart
#     of the locality mutation) is unused so far.
