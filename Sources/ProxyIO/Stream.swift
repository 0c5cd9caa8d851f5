// A socket with the few operations the data path needs: peek a 5-byte header, take a whole small message,
// move bytes to another stream without copying, write, and close after a flush. A plain socket is read and
// written by the stream itself, through evbuffers of its own (a bufferevent only connects it and closes it);
// TLS swaps in an OpenSSL bufferevent on the same socket, whose buffers the data path then uses as they are.
import CLibevent
import COpenSSL
import Glibc
import PGWire
import ProxyCore

/// Receives a stream's events. Implemented by ClientConnection, ServerConnection and CancelForwarder.
protocol StreamHandler: AnyObject {
    func streamReadable(_ stream: Stream)
    func streamWritable(_ stream: Stream)
    /// EOF, error, or connected (`BEV_EVENT_*` bits).
    func streamEvent(_ stream: Stream, events: Int16)
}

private let readCallback: bufferevent_data_cb = { _, ctx in
    let s = Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue()
    if s.settingUpTLS { return s.tlsSetupReadable() }
    s.handler?.streamReadable(s)
}
private let writeCallback: bufferevent_data_cb = { _, ctx in
    Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue().drained()
}
private let eventCallback: bufferevent_event_cb = { _, events, ctx in
    Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue().received(events: events)
}
private let socketReadCallback: event_callback_fn = { _, _, ctx in
    Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue().readSocket()
}
private let socketWriteCallback: event_callback_fn = { _, _, ctx in
    Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue().socketWritable()
}

/// Output above this pauses the source (backpressure); the source resumes when output drains below `resumeBytes`.
let pauseBytes = 512 * 1024
let resumeBytes = 128 * 1024

/// Owns one bufferevent. Ownership: the context pointer given to libevent is unretained; the owning
/// connection keeps the Stream alive and calls `close()` (which frees the bufferevent) before dropping it.
/// A stream closing after a flush keeps itself alive through `selfRetain` until the flush ends.
final class Stream {
    private(set) var bev: OpaquePointer?
    private(set) var input: OpaquePointer {
        didSet { front = nil }
    }
    /// The input's first extent as `contiguousFront` last found it (start and length), until the input
    /// changes: the headers of one read's replies are then read without asking libevent each time. Kept only
    /// for buffers of the stream's own (`directWrites`), which change only through this class (every change
    /// clears it); OpenSSL's bufferevent fills a TLS stream's input by itself.
    /// (Set only by Stream and Stream+Input.)
    var front: UnsafeRawPointer?
    var frontLength = 0
    private(set) var output: OpaquePointer
    /// Not weak: a weak reference would put every retain and release of a connection on the slow path. Safe
    /// because `close()` and `closeAfterFlush()` clear it, and every owner closes its stream before it goes.
    unowned(unsafe) var handler: StreamHandler?
    fileprivate(set) var closingAfterFlush = false
    private var selfRetain: Stream?
    private(set) var isClosed = false

    /// Where TLS stands on this stream.
    enum TLSPhase {
        case none
        /// 'S' is being flushed in plaintext; then the handshake starts with this SSL (not yet owned by a bufferevent).
        case awaitingFlush(ssl: OpaquePointer, accepting: Bool)
        /// The OpenSSL bufferevent owns the SSL and runs the handshake.
        case handshaking
        case established(ssl: OpaquePointer)
    }
    /// Callbacks go to the TLS setup (negotiation with a server, flush of 'S', handshake), not to the handler.
    fileprivate(set) var settingUpTLS = false
    /// Everything TLS, boxed: a plain stream (most idle clients) carries one nil pointer instead of ~90 bytes.
    private final class TLSState {
        var phase: TLSPhase = .none
        /// server_tls_sslmode negotiation run before the handler hears BEV_EVENT_CONNECTED.
        var serverNegotiation: ServerTLSStateMachine?
        var serverSetup: ServerTLSSetup?
        var failure: String?
        var description: String?
    }
    private var tls: TLSState?
    private var tlsState: TLSState {
        if let tls { return tls }
        let state = TLSState()
        tls = state
        return state
    }
    private(set) var tlsPhase: TLSPhase {
        get { tls?.phase ?? .none }
        set { tlsState.phase = newValue }
    }
    private var serverNegotiation: ServerTLSStateMachine? {
        get { tls?.serverNegotiation }
        set { tlsState.serverNegotiation = newValue }
    }
    private var serverSetup: ServerTLSSetup? {
        get { tls?.serverSetup }
        set { tlsState.serverSetup = newValue }
    }
    /// Why the stream failed when the proxy knows better than errno (TLS negotiation or handshake).
    private(set) var failure: String? {
        get { tls?.failure }
        set { tlsState.failure = newValue }
    }
    /// "TLSv1.3/TLS_AES_256_GCM_SHA384" once a handshake completed.
    private(set) var tlsDescription: String? {
        get { tls?.description }
        set { tlsState.description = newValue }
    }
    /// Parked (see `park()`): no bufferevent; the read event waits on the socket.
    private(set) var parked = false

    /// The loop this stream lives on (it outlives every stream). A strong `let`: Swift reads it without a
    /// retain and release around each use, which an `unowned(unsafe)` reference costs (measured: every call
    /// through one was a retain/release pair).
    let loop: EventLoop
    /// Plain sockets are written by `flush()` straight away; `writeEvent` is armed only while the socket is
    /// full (`writeArmed`). OpenSSL bufferevents write themselves.
    private(set) var directWrites = true
    private var writeArmed = false
    /// A plain socket's own write event, made the first time the socket is full.
    private var writeEvent: OpaquePointer?
    /// Plain sockets: `drained()` runs when a write leaves this many bytes or fewer (the bufferevent's low
    /// watermark does it for OpenSSL's).
    private var writeLowWatermark = 0
    private var queuedForFlush = false
    /// Someone waits for the output to drain (backpressure, close after flush, TLS setup): `drained()` runs
    /// when a flush empties it.
    private var drainWaiter = false
    /// Plain sockets are read by `readSocket` from this event, not by the bufferevent: its evbuffer_read asks
    /// FIONREAD before every read, one more syscall per message. Nil once TLS reads (OpenSSL's bufferevent).
    private var readEvent: OpaquePointer?
    private var readPaused = false
    /// An outgoing connection reads only once connected (a failed connect is reported once, by the bufferevent).
    private var awaitingConnect = false
    /// The last read filled its space: the next one reserves more (large results), else a small chain.
    private var lastReadFilled = false

    deinit {
        if let writeEvent { event_free(writeEvent) }
        // A plain stream's own buffers (a parked one has none; after TLS they were the bufferevent's).
        if directWrites && !parked {
            evbuffer_free(input)
            evbuffer_free(output)
        }
    }

    init(loop: EventLoop, fd: Int32, handler: StreamHandler) {
        self.loop = loop
        self.fd = fd
        let bev = bufferevent_socket_new(loop.base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))!
        self.bev = bev
        // A plain socket's data goes through buffers of its own, not the bufferevent's: those carry the
        // bufferevent's callbacks, which libevent runs on every add, move and drain (measured: the largest
        // single libevent cost of a forwarded transaction). The bufferevent connects, and closes the socket.
        (self.input, self.output) = Self.plainBuffers()
        self.handler = handler
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        bufferevent_setcb(bev, readCallback, writeCallback, eventCallback, ctx)
        // A new bufferevent has EV_WRITE enabled: off, so adding output does not arm the write event.
        bufferevent_disable(bev, Int16(EV_WRITE))
        startReading()
    }

    /// EOF, error or connected, from the bufferevent or from `readSocket`.
    fileprivate func received(events: Int16) {
        if awaitingConnect && events & Int16(BEV_EVENT_CONNECTED) != 0 {
            awaitingConnect = false
            startReading()
        }
        if closingAfterFlush {
            // The peer went away while we were flushing a final error.
            if events & Int16(BEV_EVENT_EOF | BEV_EVENT_ERROR) != 0 { close() }
            return
        }
        if settingUpTLS { return tlsSetupEvent(events) }
        handler?.streamEvent(self, events: events)
    }

    // MARK: Reading a plain socket

    /// Reads by `readSocket` from one read event per stream (it outlives parking), unless paused or connecting.
    private func startReading() {
        guard bev != nil, directWrites, !isClosed else { return }
        if readEvent == nil {
            readEvent = event_new(loop.base, fd, Int16(EV_READ | EV_PERSIST), socketReadCallback,
                                  Unmanaged.passUnretained(self).toOpaque())
        }
        if !readPaused && !awaitingConnect, let readEvent { event_add(readEvent, nil) }
    }

    /// Frees the read event (before the bufferevent closes the socket, parks, or hands reading to OpenSSL).
    private func stopReading() {
        guard let event = readEvent else { return }
        event_free(event)
        readEvent = nil
    }

    /// One recv into the input's free space (two extents at most), then the handler hears it, as from the
    /// bufferevent. EOF and errors stop reading and go to `received(events:)` with BEV_EVENT_READING.
    fileprivate func readSocket() {
        guard !isClosed else { return }
        if parked { unpark() }
        var vecs = (iovec(), iovec())
        var error: Int32 = 0
        let got: Int = withUnsafeMutableBytes(of: &vecs) { raw in
            let v = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
            let want = lastReadFilled ? 16_384 : 960
            front = nil
            let n = evbuffer_reserve_space(input, want, v, 2)
            guard n > 0 else { return -1 }
            // libevent's evbuffer_iovec is struct iovec here. recv/recvmsg go straight to the socket (readv
            // takes the file layer's path first: fdget_pos, vfs_readv, the iterator of a regular read).
            let r: Int
            if n == 1 {
                r = recv(fd, v[0].iov_base, v[0].iov_len, 0)
            } else {
                var message = msghdr()
                message.msg_iov = v
                message.msg_iovlen = Int(n)
                r = recvmsg(fd, &message, 0)
            }
            error = errno
            guard r > 0 else { return r }
            var left = r
            var used: Int32 = 0
            var reserved = 0
            for k in 0..<Int(n) {
                reserved += v[k].iov_len
                guard left > 0 else { continue }
                v[k].iov_len = min(left, v[k].iov_len)
                left -= v[k].iov_len
                used += 1
            }
            evbuffer_commit_space(input, v, used)
            lastReadFilled = r == reserved
            return r
        }
        if got > 0 {
            if settingUpTLS { return tlsSetupReadable() }
            loop.afterRead { handler?.streamReadable(self) }
            return
        }
        if got < 0 && (error == EAGAIN || error == EWOULDBLOCK || error == EINTR) { return }
        // As the bufferevent does: reading stops at EOF or an error.
        if let readEvent { event_del(readEvent) }
        received(events: Int16(BEV_EVENT_READING) | Int16(got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR))
    }

    /// Output was added: write it at the end of this turn of the loop.
    @inline(__always)
    private func outputAdded() {
        if directWrites && !queuedForFlush && !writeArmed {
            queuedForFlush = true
            loop.needsFlush(self)
        }
    }

    /// Writes the buffered output now (EventLoop calls it once per turn). What the socket does not take, and
    /// any error, is left to the stream's write event, armed until the output is empty.
    func flush() {
        queuedForFlush = false
        guard directWrites, !writeArmed, !isClosed, !parked, evbuffer_get_length(output) > 0 else { return }
        let written = sendOutput()
        if written < 0 || evbuffer_get_length(output) > 0 {
            writeArmed = true
            if writeEvent == nil {
                writeEvent = event_new(loop.base, fd, Int16(EV_WRITE | EV_PERSIST), socketWriteCallback,
                                       Unmanaged.passUnretained(self).toOpaque())
            }
            event_add(writeEvent, nil)
            return
        }
        if drainWaiter { drained() }
    }

    /// The plain socket takes more output (its write event, armed by `flush`): writes, disarms once empty, and
    /// reports a drain to the low watermark or a write error, as the bufferevent's write callback did.
    fileprivate func socketWritable() {
        guard !isClosed, directWrites else { return }
        let written = sendOutput()
        let error = errno
        if written < 0 && error != EAGAIN && error != EWOULDBLOCK && error != EINTR {
            disarmWrite()
            return received(events: Int16(BEV_EVENT_WRITING) | Int16(BEV_EVENT_ERROR))
        }
        let left = evbuffer_get_length(output)
        if left == 0 { disarmWrite() }
        if written > 0 && left <= writeLowWatermark { drained() }
    }

    /// Sends the output's extents (eight per call, one send for the usual single extent) and drains what the
    /// socket took: evbuffer_write's writev takes the file layer's longer path through the kernel. Goes on while
    /// the socket takes everything offered and more is left. Returns the bytes sent, or -1 with errno set.
    private func sendOutput() -> Int {
        var total = 0
        while true {
            var vecs = (iovec(), iovec(), iovec(), iovec(), iovec(), iovec(), iovec(), iovec())
            var offered = 0
            var more = false
            let sent: Int = withUnsafeMutableBytes(of: &vecs) { raw in
                let v = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
                let extents = Int(evbuffer_peek(output, -1, nil, v, 8))
                let n = min(extents, 8)
                guard n > 0 else { return 0 }
                more = extents > n
                if n == 1 {
                    offered = v[0].iov_len
                    return send(fd, v[0].iov_base, offered, Int32(MSG_NOSIGNAL))
                }
                for k in 0..<n { offered += v[k].iov_len }
                var message = msghdr()
                message.msg_iov = v
                message.msg_iovlen = n
                return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 { return total > 0 ? total : sent }
            evbuffer_drain(output, sent)
            total += sent
            if !more || sent < offered { return total }
        }
    }

    private func disarmWrite() {
        guard writeArmed else { return }
        writeArmed = false
        if let writeEvent { event_del(writeEvent) }
    }

    /// The output drained (to the low watermark, or empty after a flush).
    fileprivate func drained() {
        drainWaiter = false
        if closingAfterFlush {
            if evbuffer_get_length(output) == 0 { close() }
            return
        }
        if settingUpTLS { return tlsSetupWritable() }
        handler?.streamWritable(self)
    }

    /// Starts a non-blocking connect; the handler gets BEV_EVENT_CONNECTED or an error. With `tls` (a server and
    /// server_tls_sslmode other than disable), SSLRequest and the handshake come first: CONNECTED then means the
    /// startup packet may go (encrypted or, under prefer, plaintext), and a failed negotiation is an error
    /// event with `failure` saying why.
    func connect(to address: SocketAddress, tls: ServerTLSSetup? = nil) -> Bool {
        guard let bev else { return false }
        if let tls, tls.mode != .disable {
            serverSetup = tls
            serverNegotiation = ServerTLSStateMachine(mode: tls.mode)
            settingUpTLS = true
        }
        awaitingConnect = true
        if let readEvent { event_del(readEvent) }
        return address.withSockaddr { sa, len in bufferevent_socket_connect(bev, UnsafeMutablePointer(mutating: sa), len) } == 0
    }

    /// The socket (the same through parking and TLS; closed by `close()`).
    let fd: Int32
    var inputLength: Int { !parked ? evbuffer_get_length(input) : 0 }
    var outputLength: Int { !parked ? evbuffer_get_length(output) : 0 }

    func write(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        if parked { unpark() }
        bytes.withUnsafeBytes { _ = evbuffer_add(output, $0.baseAddress, $0.count) }
        outputAdded()
    }

    /// Moves up to `count` buffered bytes to `other`'s output without copying; returns how many moved.
    @inline(__always)
    func move(upTo count: Int, to other: Stream) -> Int {
        if other.parked { other.unpark() }
        front = nil
        let moved = Int(evbuffer_remove_buffer(input, other.output, count))
        other.outputAdded()
        return moved
    }

    func pauseReading() {
        if parked { unpark() }
        readPaused = true
        if let readEvent { event_del(readEvent) }
        if let bev { bufferevent_disable(bev, Int16(EV_READ)) }
    }
    var readingPaused: Bool { readPaused }

    func resumeReading() {
        readPaused = false
        if readEvent != nil { return startReading() }
        if let bev, !directWrites { bufferevent_enable(bev, Int16(EV_READ)) }
    }

    /// The write callback fires when output drains to `bytes` or below.
    func setWriteLowWatermark(_ bytes: Int) {
        drainWaiter = true
        writeLowWatermark = bytes
        if let bev, !directWrites { bufferevent_setwatermark(bev, Int16(EV_WRITE), bytes, 0) }
    }

    /// Writes `bytes`, stops reading, and closes once the output is flushed (or the peer leaves). During a TLS
    /// handshake nothing can be sent: it closes at once.
    func closeAfterFlush(_ bytes: [UInt8] = []) {
        guard !isClosed, !closingAfterFlush else { return }
        if parked { unpark() }
        switch tlsPhase {
        case .awaitingFlush, .handshaking: return close()
        case .none, .established: break
        }
        write(bytes)
        handler = nil
        pauseReading()
        if outputLength == 0 { close(); return }
        closingAfterFlush = true
        selfRetain = self
        setWriteLowWatermark(0)
        outputAdded()
    }

    /// Frees the bufferevent and the socket now (a TLS session sends close_notify first). Safe to call twice.
    func close() {
        if parked { unpark() }
        guard !isClosed, let bev else { return }
        isClosed = true
        handler = nil
        switch tlsPhase {
        case .awaitingFlush(let ssl, _): SSL_free(ssl)
        case .established(let ssl):
            // Best effort and non-blocking; the queue must not keep errors for the next connection's handshake.
            _ = SSL_shutdown(ssl)
            ERR_clear_error()
        case .none, .handshaking: break
        }
        tls?.phase = .none
        stopReading()
        // A plain stream's buffers stay until deinit: code that holds the stream may still ask their length.
        freeWriteEvent()
        bufferevent_free(bev)
        self.bev = nil
        selfRetain = nil
    }

    /// A plain stream's own input and output buffers (no callbacks).
    fileprivate static func plainBuffers() -> (OpaquePointer, OpaquePointer) {
        (evbuffer_new()!, evbuffer_new()!)
    }

    /// Frees a plain stream's own buffers and write event (parking, or handing over to OpenSSL's bufferevent,
    /// whose buffers take their place).
    fileprivate func freePlainBuffers() {
        guard directWrites else { return }
        front = nil
        freeWriteEvent()
        evbuffer_free(input)
        evbuffer_free(output)
    }

    fileprivate func freeWriteEvent() {
        if let writeEvent { event_free(writeEvent) }
        writeEvent = nil
        writeArmed = false
    }
}

// MARK: Parking

extension Stream {
    /// Frees the bufferevent and its two buffers of an idle plain stream (nothing buffered either way); the
    /// stream's own read event goes on waiting on the socket: an idle client then costs about a kilobyte less.
    /// Data, EOF, or any use of the stream brings a bufferevent back (`unpark`). False when it cannot park.
    func park() -> Bool {
        guard let bev, !parked, let readEvent, event_pending(readEvent, Int16(EV_READ), nil) != 0, !isClosed, !closingAfterFlush,
              !settingUpTLS, evbuffer_get_length(input) == 0, evbuffer_get_length(output) == 0 else { return false }
        guard case .none = tlsPhase else { return false }
        bufferevent_setfd(bev, -1)
        bufferevent_free(bev)
        freePlainBuffers()
        self.bev = nil
        parked = true
        return true
    }

    var isParked: Bool { parked }

    /// A new bufferevent on the parked socket, reading (through the same read event) and writing as before.
    func unpark() {
        guard parked else { return }
        parked = false
        let bev = bufferevent_socket_new(loop.base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))!
        self.bev = bev
        (input, output) = Self.plainBuffers()
        bufferevent_setcb(bev, readCallback, writeCallback, eventCallback, Unmanaged.passUnretained(self).toOpaque())
        bufferevent_disable(bev, Int16(EV_WRITE))
    }
}

// MARK: TLS

extension Stream {
    /// Answers a client's SSLRequest: the caller wrote 'S'; once it is flushed the handshake runs as the server.
    /// The handler hears BEV_EVENT_CONNECTED when it completes, or an error event with `failure` set.
    func acceptTLS(_ ssl: OpaquePointer) {
        beginTLS(ssl, accepting: true)
    }

    /// The verified client certificate and its CommonName, once the handshake completed.
    var tlsPeer: TLSPeer? {
        guard case .established(let ssl) = tlsPhase else { return nil }
        return TLS.peer(of: ssl)
    }

    private func beginTLS(_ ssl: OpaquePointer, accepting: Bool) {
        tlsPhase = .awaitingFlush(ssl: ssl, accepting: accepting)
        settingUpTLS = true
        // Nothing is read in plaintext any more: the next bytes are the handshake, read by OpenSSL.
        pauseReading()
        if outputLength == 0 { swapToOpenSSL() } else { setWriteLowWatermark(0) }
    }

    /// Replaces the socket bufferevent by an OpenSSL one on the same socket. Ownership: the new bufferevent
    /// owns the SSL and the socket (BEV_OPT_CLOSE_ON_FREE frees both); the old one lets go of the socket first.
    private func swapToOpenSSL() {
        guard case .awaitingFlush(let ssl, let accepting) = tlsPhase, let old = bev else { return }
        let state = accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING
        guard let tlsBev = bufferevent_openssl_socket_new(bufferevent_get_base(old), fd, ssl, state,
                                                          Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
            return tlsSetupFailed("cannot create the TLS bufferevent")
        }
        tlsPhase = .handshaking
        // OpenSSL's bufferevent reads and writes by itself from now on (with its own buffers: the plain ones
        // are empty, 'S' and SSLRequest flushed and nothing read since).
        stopReading()
        freePlainBuffers()
        directWrites = false
        bufferevent_setfd(old, -1)
        bufferevent_free(old)
        bev = tlsBev
        input = bufferevent_get_input(tlsBev)
        output = bufferevent_get_output(tlsBev)
        // Peers often close without close_notify after their last message: that is an EOF, not an error.
        bufferevent_openssl_set_allow_dirty_shutdown(tlsBev, 1)
        bufferevent_setcb(tlsBev, readCallback, writeCallback, eventCallback, Unmanaged.passUnretained(self).toOpaque())
        bufferevent_enable(tlsBev, Int16(EV_READ | EV_WRITE))
    }

    fileprivate func tlsSetupWritable() {
        if case .awaitingFlush = tlsPhase, outputLength == 0 { swapToOpenSSL() }
    }

    fileprivate func tlsSetupReadable() {
        // Only the server's one-byte answer to SSLRequest is read in plaintext here.
        guard var machine = serverNegotiation, machine.state == .awaitingResponse, inputLength > 0 else { return }
        let byte = peekByte(at: 0)
        drain(1)
        let action = machine.responseReceived(byte, trailingBytes: inputLength)
        serverNegotiation = machine
        run(action)
    }

    fileprivate func tlsSetupEvent(_ events: Int16) {
        let connected = events & Int16(BEV_EVENT_CONNECTED) != 0
        switch tlsPhase {
        case .none:
            // The TCP connection to a server: start the negotiation.
            guard connected, var machine = serverNegotiation else { return finishSetup(events) }
            let action = machine.connected()
            serverNegotiation = machine
            run(action)
        case .awaitingFlush:
            finishSetup(events)
        case .handshaking:
            guard connected, let bev, let ssl = bufferevent_openssl_get_ssl(bev) else {
                let why = bev.map { TLS.handshakeError($0) } ?? "closed"
                if var machine = serverNegotiation {
                    let action = machine.handshakeFailed(why)
                    serverNegotiation = machine
                    return run(action)
                }
                return tlsSetupFailed(why)
            }
            tlsPhase = .established(ssl: ssl)
            tlsDescription = TLS.sessionDescription(ssl)
            guard var machine = serverNegotiation else { return finishSetup(events) }
            let action = machine.handshakeCompleted()
            serverNegotiation = machine
            run(action)
        case .established:
            finishSetup(events)
        }
    }

    private func run(_ action: ServerTLSStateMachine.Action) {
        switch action {
        case .sendSSLRequest:
            write(ProxyMessages.sslRequest())
        case .startTLS:
            guard let setup = serverSetup, let ssl = setup.context?.makeClientSSL(mode: setup.mode, host: setup.host) else {
                return tlsSetupFailed("cannot set up TLS for host \(serverSetup?.host ?? "?")")
            }
            beginTLS(ssl, accepting: false)
        case .proceed:
            serverNegotiation = nil
            serverSetup = nil
            resumeReading()
            finishSetup(Int16(BEV_EVENT_CONNECTED))
        case .fail(let reason):
            tlsSetupFailed(reason)
        }
    }

    /// Setup is over: the handler takes the stream with this event (connected, or the error it ended with).
    private func finishSetup(_ events: Int16) {
        settingUpTLS = false
        handler?.streamEvent(self, events: events)
    }

    private func tlsSetupFailed(_ why: String) {
        failure = why
        serverNegotiation = nil
        finishSetup(Int16(BEV_EVENT_ERROR))
    }
}

/// Placeholder handler used only between a Stream's creation and the owner assigning itself.
final class DummyHandler: StreamHandler {
    static let shared = DummyHandler()
    func streamReadable(_ stream: Stream) {}
    func streamWritable(_ stream: Stream) {}
    func streamEvent(_ stream: Stream, events: Int16) {}
}
