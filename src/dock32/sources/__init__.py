"""Getting the sources: downloads verified against their pins, the content-addressed cache, unpacked trees, patch series, and the go command."""
