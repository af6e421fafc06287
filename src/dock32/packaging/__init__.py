"""The .debs laid out like Docker's own, their SBOMs, signing, and `dock32 publish`."""
