package openvpn

import (
	"net"
)

// defaultUDPBuffer is the default of ServerConfig.ReadBuffer and
// WriteBuffer: room for a few thousand handshake datagrams, what a burst of
// hundreds of clients connecting at once (a plant coming back after a
// power cut) sends before the server has read them.
const defaultUDPBuffer = 4 << 20

// sizeUDPBuffers asks for the configured socket buffers and logs what the
// kernel granted. Best effort: a kernel that caps the size still leaves a
// working socket, and the log says what to raise.
func (srv *Server) sizeUDPBuffers(conn *net.UDPConn) {
	rcv, snd := srv.cfg.ReadBuffer, srv.cfg.WriteBuffer
	if rcv == 0 {
		rcv = defaultUDPBuffer
	}
	if snd == 0 {
		snd = defaultUDPBuffer
	}
	if rcv > 0 {
		if err := conn.SetReadBuffer(rcv); err != nil {
			srv.log.Warn("UDP receive buffer not set", "requested", rcv, "error", err)
		}
	}
	if snd > 0 {
		if err := conn.SetWriteBuffer(snd); err != nil {
			srv.log.Warn("UDP send buffer not set", "requested", snd, "error", err)
		}
	}
	got, err := socketBuffers(conn)
	if err != nil {
		srv.log.Debug("UDP socket buffers unknown", "error", err)
		return
	}
	attrs := []any{"addr", conn.LocalAddr().String(),
		"receive_requested", rcv, "receive_granted", got.rcv,
		"send_requested", snd, "send_granted", got.snd}
	// Linux doubles the size it is given (the extra half is for its own
	// bookkeeping) and reports the doubled value; it caps the request at
	// the sysctl first.
	short := (rcv > 0 && got.rcv < rcv*got.factor) || (snd > 0 && got.snd < snd*got.factor)
	if !short {
		srv.log.Info("UDP socket buffers", attrs...)
		return
	}
	if got.rmemMax > 0 {
		attrs = append(attrs, "net.core.rmem_max", got.rmemMax, "net.core.wmem_max", got.wmemMax)
	}
	srv.log.Warn("UDP socket buffers smaller than requested (capped by the kernel; raise net.core.rmem_max and wmem_max)", attrs...)
}

// grantedBuffers is what the kernel reports for a socket.
type grantedBuffers struct {
	rcv, snd int // SO_RCVBUF, SO_SNDBUF as reported
	// factor is how the reported size relates to the requested one (2 on
	// Linux, which doubles it).
	factor int
	// rmemMax and wmemMax are the kernel's caps; zero when unknown.
	rmemMax, wmemMax int
}
