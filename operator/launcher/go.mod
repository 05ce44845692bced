module ferry.dev/launcher

go 1.23
