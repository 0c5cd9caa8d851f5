// Reading a stream's buffered input in place: message headers, small reads without a copy, frames, drains.
// The stream's first input extent is kept between peeks (`front`) until the input changes.

import CLibevent
import PGWire

extension Stream {
    /// Type byte and length field of the next message, if 5 bytes are buffered. No allocation.
    func peekHeader() -> (type: UInt8, length: Int32)? { peekHeader(at: 0) }

    /// Type byte and length field of the message starting `offset` bytes into the buffered input.
    @inline(__always)
    func peekHeader(at offset: Int) -> (type: UInt8, length: Int32)? {
        // The first extent seen at the last peek holds it (a parked stream keeps no front).
        if let front, offset + 5 <= frontLength { return Self.header(at: front + offset) }
        guard !parked, evbuffer_get_length(input) >= offset + 5 else { return nil }
        return withSmallInput(at: offset, 5) { Self.header(at: $0.baseAddress!) }
    }

    /// `count` (at most 64) buffered bytes from `offset` on, for `body`: in place when the input's first extent
    /// holds them, else copied to the stack (the caller checked they are buffered). Headers, tags, single bytes.
    func withSmallInput<R>(at offset: Int, _ count: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        precondition(count <= 64, "withSmallInput is for short messages")
        if let front = contiguousFront(offset + count) { return body(UnsafeRawBufferPointer(start: front + offset, count: count)) }
        var bytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            var pos = evbuffer_ptr()
            evbuffer_ptr_set(input, &pos, offset, EVBUFFER_PTR_SET)
            _ = evbuffer_copyout_from(input, &pos, raw.baseAddress, count)
            return body(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
        }
    }

    /// Type byte and length field of the header at `h`.
    @inline(__always)
    private static func header(at h: UnsafeRawPointer) -> (type: UInt8, length: Int32) {
        let length = Int32(bitPattern: UInt32(h.load(fromByteOffset: 1, as: UInt8.self)) << 24
            | UInt32(h.load(fromByteOffset: 2, as: UInt8.self)) << 16
            | UInt32(h.load(fromByteOffset: 3, as: UInt8.self)) << 8 | UInt32(h.load(fromByteOffset: 4, as: UInt8.self)))
        return (h.load(as: UInt8.self), length)
    }

    /// The start of the buffered input when its first extent holds at least `count` bytes (the usual case for
    /// the replies of one read): headers are read there in place. Valid until the input changes.
    @inline(__always)
    private func contiguousFront(_ count: Int) -> UnsafeRawPointer? {
        if let front, count <= frontLength { return front }
        var vec = iovec()
        guard evbuffer_peek(input, count, nil, &vec, 1) == 1, vec.iov_len >= count, let base = vec.iov_base else { return nil }
        if directWrites {
            front = UnsafeRawPointer(base)
            frontLength = vec.iov_len
        }
        return UnsafeRawPointer(base)
    }

    /// The byte at `offset` of the buffered input (the caller checked the length).
    func peekByte(at offset: Int) -> UInt8 {
        withSmallInput(at: offset, 1) { $0[0] }
    }

    /// The first `count` buffered bytes as one contiguous buffer, without copying them out (libevent may
    /// move them together inside its buffer once). The caller checked that `count` bytes are buffered.
    func withContiguousInput<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        front = nil
        let p = evbuffer_pullup(input, count)
        return body(UnsafeRawBufferPointer(start: p, count: count))
    }

    /// Up to `max` buffered bytes, not consumed.
    func peek(max: Int) -> [UInt8] {
        let n = min(max, inputLength)
        var bytes = [UInt8](repeating: 0, count: n)
        _ = bytes.withUnsafeMutableBytes { evbuffer_copyout(input, $0.baseAddress, n) }
        return bytes
    }

    /// The first `count` buffered bytes (the caller checked they are buffered) copied into `buffer`, whose
    /// storage is reused: once it is large enough this allocates nothing (a new [UInt8] costs malloc and a
    /// runtime generic-metadata lookup, a few hundred instructions).
    func copyInput(_ count: Int, into buffer: inout [UInt8]) {
        if buffer.count > count {
            buffer.removeLast(buffer.count - count)
        } else if buffer.count < count {
            buffer.append(contentsOf: repeatElement(0, count: count - buffer.count))
        }
        buffer.withUnsafeMutableBytes { _ = evbuffer_copyout(input, $0.baseAddress, count) }
    }

    func drain(_ count: Int) {
        front = nil
        if !parked { evbuffer_drain(input, count) }
    }

    /// Puts bytes back in front of the buffered input (a query being retried elsewhere).
    func prepend(_ bytes: [UInt8]) {
        if parked { unpark() }
        front = nil
        bytes.withUnsafeBytes { _ = evbuffer_prepend(input, $0.baseAddress, $0.count) }
    }

    /// Removes and returns one whole message if it is all buffered (login phases; small messages).
    func takeFrame(maxLength: Int) throws(ProtocolViolation) -> Frame? {
        if parked { unpark() }
        guard let (type, lengthField) = peekHeader() else { return nil }
        let header: FrameHeader
        switch FrameHeader.parse(type: type, lengthField: lengthField, maxLength: maxLength) {
        case .success(let h): header = h
        case .failure(let v): throw v
        }
        guard inputLength >= header.totalLength else { return nil }
        front = nil
        evbuffer_drain(input, 5)
        var payload = [UInt8](repeating: 0, count: header.length - 4)
        _ = payload.withUnsafeMutableBytes { evbuffer_remove(input, $0.baseAddress, $0.count) }
        return Frame(type: type, payload: payload)
    }
}
