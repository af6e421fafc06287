"""The pinned Go and the C cross compiler, found or provisioned and checked; host set-up, `dock32 doctor`, and the instruction-set check."""
