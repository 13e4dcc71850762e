// Command ferretdb starts FerretDB v1 (a MongoDB wire-protocol server) on SQLite, or on PostgreSQL
// with -postgresql-url (where `_id` lookups are served by an index), for Cutover's tests and
// benchmarks only.
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
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL to store the data in instead of SQLite")
	flag.Parse()

	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	switch {
	case *postgresqlURL != "":
		config.Handler = "postgresql"
		config.PostgreSQLURL = *postgresqlURL
	case *dir != "":
		config.Handler = "sqlite"
		config.SQLiteURL = "file:" + *dir + "/"
	default:
		slog.Error("-sqlite-dir or -postgresql-url is required")
		os.Exit(2)
	}

	server, err := ferretdb.New(config)
	if err != nil {
		slog.Error("cannot start FerretDB", "err", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	_ = server.Run(ctx)
}
