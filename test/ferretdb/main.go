// Command ferretdb starts FerretDB v1 (a MongoDB wire-protocol server) on SQLite, for Cutover's
// tests only.
//
// Why not `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: that binary panics at
// start-up because the module zip lacks build/version/version.txt (FerretDB checks it only when
// FerretDB itself is the main module), and `go install pkg@version` also asks the module proxy
// for the deprecation list, which may be refused. Embedding the public `ferretdb` package in this
// small main module avoids both, with the same server code from the same module version.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("sqlite-dir", "", "directory for the SQLite databases")
	flag.Parse()

	if *dir == "" {
		slog.Error("-sqlite-dir is required")
		os.Exit(2)
	}

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		slog.Error("cannot start FerretDB", "err", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	_ = server.Run(ctx)
}
