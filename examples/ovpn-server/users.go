package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

var errBadCredentials = errors.New("unknown user or wrong password")

// loadUsers reads a users file: one "name:bcrypt-hash" per line, # comments.
// Hashes come from any bcrypt tool, e.g. `htpasswd -nbB name password`.
func loadUsers(path string) (func(ctx context.Context, user, pass string) error, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	users := map[string][]byte{}
	sc := bufio.NewScanner(fh)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, hash, ok := strings.Cut(t, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s:%d: want name:bcrypt-hash", path, line)
		}
		users[name] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return func(_ context.Context, user, pass string) error {
		hash, ok := users[user]
		if !ok {
			// Spend the same time as for a known user.
			_ = bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z7oQf3d0yBZ9pVJgVUK2T9S."), []byte(pass))
			return errBadCredentials
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
			return errBadCredentials
		}
		return nil
	}, nil
}
