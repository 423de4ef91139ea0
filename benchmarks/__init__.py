"""The side-by-side benchmark: imgorigin against thumbor and IPX, and the in-process floor."""
