// A libevent bufferevent with the few operations the data path needs: peek a 5-byte header, take a
// whole small message, move bytes to another stream without copying, write, and close after a flush.
import CLibevent
import PGWire

/// Receives a stream's events. Implemented by ClientConnection, ServerConnection and CancelForwarder.
protocol StreamHandler: AnyObject {
    func streamReadable(_ stream: Stream)
    func streamWritable(_ stream: Stream)
    /// EOF, error, or connected (`BEV_EVENT_*` bits).
    func streamEvent(_ stream: Stream, events: Int16)
}

private let readCallback: bufferevent_data_cb = { _, ctx in
    let s = Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue()
    s.handler?.streamReadable(s)
}
private let writeCallback: bufferevent_data_cb = { _, ctx in
    let s = Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue()
    if s.closingAfterFlush {
        if evbuffer_get_length(s.output) == 0 { s.close() }
        return
    }
    s.handler?.streamWritable(s)
}
private let eventCallback: bufferevent_event_cb = { _, events, ctx in
    let s = Unmanaged<Stream>.fromOpaque(ctx!).takeUnretainedValue()
    if s.closingAfterFlush {
        // The peer went away while we were flushing a final error.
        if events & Int16(BEV_EVENT_EOF | BEV_EVENT_ERROR) != 0 { s.close() }
        return
    }
    s.handler?.streamEvent(s, events: events)
}

/// Output above this pauses the source (backpressure); the source resumes when output drains below `resumeBytes`.
let pauseBytes = 512 * 1024
let resumeBytes = 128 * 1024

/// Owns one bufferevent. Ownership: the context pointer given to libevent is unretained; the owning
/// connection keeps the Stream alive and calls `close()` (which frees the bufferevent) before dropping it.
/// A stream closing after a flush keeps itself alive through `selfRetain` until the flush ends.
final class Stream {
    private(set) var bev: OpaquePointer?
    let input: OpaquePointer
    let output: OpaquePointer
    weak var handler: StreamHandler?
    fileprivate(set) var closingAfterFlush = false
    private var selfRetain: Stream?
    private(set) var isClosed = false

    init(base: OpaquePointer, fd: Int32, handler: StreamHandler) {
        let bev = bufferevent_socket_new(base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))!
        self.bev = bev
        self.input = bufferevent_get_input(bev)
        self.output = bufferevent_get_output(bev)
        self.handler = handler
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        bufferevent_setcb(bev, readCallback, writeCallback, eventCallback, ctx)
        bufferevent_enable(bev, Int16(EV_READ | EV_WRITE))
    }

    /// Starts a non-blocking connect; the handler gets BEV_EVENT_CONNECTED or an error.
    func connect(to address: SocketAddress) -> Bool {
        guard let bev else { return false }
        return address.withSockaddr { sa, len in bufferevent_socket_connect(bev, UnsafeMutablePointer(mutating: sa), len) } == 0
    }

    var fd: Int32 { bev.map { bufferevent_getfd($0) } ?? -1 }
    var inputLength: Int { evbuffer_get_length(input) }
    var outputLength: Int { evbuffer_get_length(output) }

    func write(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        bytes.withUnsafeBytes { _ = evbuffer_add(output, $0.baseAddress, $0.count) }
    }

    /// Type byte and length field of the next message, if 5 bytes are buffered. No allocation.
    func peekHeader() -> (type: UInt8, length: Int32)? {
        guard evbuffer_get_length(input) >= 5 else { return nil }
        var header: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0)
        _ = withUnsafeMutableBytes(of: &header) { evbuffer_copyout(input, $0.baseAddress, 5) }
        let length = Int32(bitPattern: UInt32(header.1) << 24 | UInt32(header.2) << 16 | UInt32(header.3) << 8 | UInt32(header.4))
        return (header.0, length)
    }

    /// The byte at `offset` of the buffered input (the caller checked the length).
    func peekByte(at offset: Int) -> UInt8 {
        var pos = evbuffer_ptr()
        evbuffer_ptr_set(input, &pos, offset, EVBUFFER_PTR_SET)
        var byte: UInt8 = 0
        _ = evbuffer_copyout_from(input, &pos, &byte, 1)
        return byte
    }

    /// The first `count` buffered bytes as one contiguous buffer, without copying them out (libevent may
    /// move them together inside its buffer once). The caller checked that `count` bytes are buffered.
    func withContiguousInput<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let p = evbuffer_pullup(input, count)
        return body(UnsafeRawBufferPointer(start: p, count: count))
    }

    /// Up to `max` buffered bytes, not consumed.
    func peek(max: Int) -> [UInt8] {
        let n = min(max, evbuffer_get_length(input))
        var bytes = [UInt8](repeating: 0, count: n)
        _ = bytes.withUnsafeMutableBytes { evbuffer_copyout(input, $0.baseAddress, n) }
        return bytes
    }

    func drain(_ count: Int) { evbuffer_drain(input, count) }

    /// Puts bytes back in front of the buffered input (a query being retried elsewhere).
    func prepend(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = evbuffer_prepend(input, $0.baseAddress, $0.count) }
    }

    /// Removes and returns one whole message if it is all buffered (login phases; small messages).
    func takeFrame(maxLength: Int) throws(ProtocolViolation) -> Frame? {
        guard let (type, lengthField) = peekHeader() else { return nil }
        let header: FrameHeader
        switch FrameHeader.parse(type: type, lengthField: lengthField, maxLength: maxLength) {
        case .success(let h): header = h
        case .failure(let v): throw v
        }
        guard inputLength >= header.totalLength else { return nil }
        evbuffer_drain(input, 5)
        var payload = [UInt8](repeating: 0, count: header.length - 4)
        _ = payload.withUnsafeMutableBytes { evbuffer_remove(input, $0.baseAddress, $0.count) }
        return Frame(type: type, payload: payload)
    }

    /// Moves up to `count` buffered bytes to `other`'s output without copying; returns how many moved.
    @inline(__always)
    func move(upTo count: Int, to other: Stream) -> Int {
        Int(evbuffer_remove_buffer(input, other.output, count))
    }

    func pauseReading() { if let bev { bufferevent_disable(bev, Int16(EV_READ)) } }
    func resumeReading() { if let bev { bufferevent_enable(bev, Int16(EV_READ)) } }

    /// The write callback fires when output drains to `bytes` or below.
    func setWriteLowWatermark(_ bytes: Int) {
        if let bev { bufferevent_setwatermark(bev, Int16(EV_WRITE), bytes, 0) }
    }

    /// Writes `bytes`, stops reading, and closes once the output is flushed (or the peer leaves).
    func closeAfterFlush(_ bytes: [UInt8] = []) {
        guard !isClosed, !closingAfterFlush else { return }
        write(bytes)
        handler = nil
        pauseReading()
        if outputLength == 0 { close(); return }
        closingAfterFlush = true
        selfRetain = self
        setWriteLowWatermark(0)
    }

    /// Frees the bufferevent and the socket now. Safe to call twice.
    func close() {
        guard !isClosed, let bev else { return }
        isClosed = true
        handler = nil
        bufferevent_free(bev)
        self.bev = nil
        selfRetain = nil
    }
}
