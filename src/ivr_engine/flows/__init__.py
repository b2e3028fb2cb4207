"""Call flows: one coroutine per consultation request, written as straight-line code."""
