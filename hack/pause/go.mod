module ferry.dev/pause

go 1.23
