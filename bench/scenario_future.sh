# bench/scenario_future.sh — what the harness does not measure yet.
# Sourced by bench/run.sh; defines no scenario: every scenario (A B C D E,
# and S, the scale targets) has its own file.  New work goes in a file of
# its own, measured with `measure` (lib.sh) the way A and C are.
#
# Still to add:
#   - gen_attachments.py's `mutate --mutation 2` (the file-tree counterpart
#     of the locality mutation) is unused so far.
