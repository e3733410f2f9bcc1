// Package conffile reads OpenVPN configuration files: the format
// `openvpn --config` reads, for the directives the openvpn package supports.
//
// Parse returns a File with typed fields. File.ServerConfig and
// File.ClientConfig map it onto openvpn.ServerConfig and openvpn.ClientConfig;
// what a config says about the TUN device, sockets and the address pool
// (dev, proto, port, server) stays in File for the program that owns them.
//
// Syntax: one directive per line, optionally prefixed with "--"; "#" and ";"
// start comments; double and single quotes group words; a backslash escapes
// the next character. Inline blocks <ca>, <cert>, <key>, <tls-auth>,
// <tls-crypt>, <tls-crypt-v2>, <extra-certs>, <dh> and <auth-user-pass> hold
// file contents. File names are relative to the config file's directory.
//
// An unknown directive is an error naming the line. A directive that stock
// openvpn knows but this implementation does not support (tap devices,
// --fragment, static-key mode, plugins and scripts, the management
// interface, allow-compression yes) is an error wrapping ErrUnsupported that
// says why. compress and comp-lzo select only the compression framing
// (openvpn.Compression): nothing is ever compressed.
//
// These directives are accepted and ignored, because they only concern the
// stock openvpn process and change nothing on the wire: persist-key,
// persist-tun, verb, mute, status, status-version, log, log-append, user,
// group, resolv-retry, mute-replay-warnings, ifconfig-pool-persist,
// script-security, setenv, setenv-safe, float, sndbuf, rcvbuf, txqueuelen,
// mssfix, fast-io, suppress-timestamps, writepid, daemon, auth-nocache,
// connect-retry, connect-retry-max, server-poll-timeout, remote-random,
// ignore-unknown-option, block-outside-dns, dhcp-option,
// redirect-gateway, route-nopull, push-peer-info, route-delay, route-method,
// machine-readable-output, tls-cert-profile, ecdh-curve, ncp-disable,
// opt-verify, keysize, tls-exit, single-session, duplicate-cn (recorded),
// username-as-common-name, topology (recorded), and route (recorded).
package conffile
