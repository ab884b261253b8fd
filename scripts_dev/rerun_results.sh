#!/usr/bin/env bash
# Re-run sections of benchmarks/RESULTS.md with the command each section recorded (the evaluation CLI
# rewrites its own section), e.g. after new weights land in unfoldldm/weights/:
#   bash scripts_dev/rerun_results.sh                       # list the sections and their commands
#   bash scripts_dev/rerun_results.sh sr4x                   # one section
#   bash scripts_dev/rerun_results.sh restore_denoise restore_deblur restore_denoise_8bit restore_jpeg restore_denoise_bm3d
# Run from the repository root with the project's Python first on PATH (e.g. `. .venv/bin/activate`).
# The hand-written text above the sections (and README's status line) is not touched: update it by hand.
set -euo pipefail
RESULTS=${RESULTS:-benchmarks/RESULTS.md}

command_of() {  # the first command line after the section's marker
    awk -v marker="<!-- unfoldldm eval: $1 -->" '
        $0 == marker { inside = 1; next }
        inside && /^python -m unfoldldm eval / { print; exit }
        inside && /^<!-- unfoldldm eval: / { exit }' "$RESULTS"
}

if [ $# -eq 0 ]; then
    for name in $(sed -n 's/^<!-- unfoldldm eval: \(.*\) -->$/\1/p' "$RESULTS"); do
        printf '%s\n    %s\n' "$name" "$(command_of "$name")"
    done
    exit 0
fi
for name in "$@"; do
    cmd=$(command_of "$name")
    if [ -z "$cmd" ]; then
        echo "rerun_results.sh: no section '$name' with a recorded command in $RESULTS (run without arguments for the list)" >&2
        exit 2
    fi
    echo "== $name: $cmd"
    start=$(date +%s)
    # the recorded command is our own (written by the evaluation CLI): run it as written
    eval "$cmd"
    echo "== $name: $(( $(date +%s) - start )) s"
done
