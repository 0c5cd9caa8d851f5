// One libevent event_base run by one thread, with the periodic janitor tick and signal events.
// C callbacks capture nothing: they find their Swift object through the context pointer.
import CLibevent
import Foundation

/// Monotonic seconds, for deadlines.
public func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A callback box handed to libevent as the context of a timer or signal event.
/// Ownership: the EventLoop keeps every box in `boxes` until the loop is freed.
final class EventBox {
    let action: () -> Void
    var event: OpaquePointer?
    init(_ action: @escaping () -> Void) { self.action = action }
}

private let eventBoxCallback: event_callback_fn = { _, _, ctx in
    Unmanaged<EventBox>.fromOpaque(ctx!).takeUnretainedValue().action()
}

private let flushCallback: event_callback_fn = { _, _, ctx in
    Unmanaged<EventLoop>.fromOpaque(ctx!).takeUnretainedValue().flushStreams()
}

public final class EventLoop {
    public let base: OpaquePointer
    private var boxes: [EventBox] = []
    /// Streams written since the last flush. What a socket read leads to is written as soon as its handler
    /// returns (`afterRead`); other writes (timers, connects) by one event, activated by the first of them, after
    /// the callbacks already due (Stream.flush): one writev per stream, no write event to arm. Not at the end of
    /// the turn: with hundreds of sockets ready at once, a statement would wait for all of them to be read
    /// (and a transaction holding row locks would hold them that much longer).
    private var dirty: [Stream] = []
    /// A socket read's handler is running: `afterRead` flushes what it writes.
    private var reading = false
    /// The clock when the running socket read began (valid while `reading`).
    private var readTime = 0.0

    /// The monotonic clock, read once per socket read: everything a read leads to (a statement's start or
    /// end, idle and wait stamps) shares its arrival time instead of asking the kernel's clock again.
    var now: Double { reading ? readTime : monotonicNow() }
    private var flushEvent: OpaquePointer?

    public init() {
        guard let base = event_base_new() else { fatalError("event_base_new failed") }
        self.base = base
        flushEvent = event_new(base, -1, 0, flushCallback, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        for box in boxes { if let ev = box.event { event_free(ev) } }
        if let flushEvent { event_free(flushEvent) }
        event_base_free(base)
    }

    /// `stream` has output to write before the loop waits again.
    func needsFlush(_ stream: Stream) {
        if dirty.isEmpty && !reading { event_active(flushEvent, EV_TIMEOUT, 0) }
        dirty.append(stream)
    }

    /// Runs the handler of a socket read, then writes what it wrote.
    @inline(__always)
    func afterRead(_ body: () -> Void) {
        readTime = monotonicNow()
        reading = true
        body()
        reading = false
        if !dirty.isEmpty { flushStreams() }
    }

    /// The round being flushed; swapped with `dirty` so that neither array is reallocated per turn.
    private var flushing: [Stream] = []

    fileprivate func flushStreams() {
        // Flushing can make more streams dirty (a callback it runs may write): they go in the next round.
        swap(&dirty, &flushing)
        // Last first: popLast keeps the capacity without removeAll's generic range replacement.
        while let stream = flushing.popLast() { stream.flush() }
    }

    /// Runs until `stop()`.
    public func run() { event_base_dispatch(base) }

    public func stop() { event_base_loopbreak(base) }

    /// A repeating timer (the janitor): one timer for all objects, not one per object.
    public func every(_ seconds: Double, _ action: @escaping () -> Void) {
        let box = EventBox(action)
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        box.event = event_new(base, -1, Int16(EV_PERSIST), eventBoxCallback, ctx)
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        event_add(box.event, &tv)
        boxes.append(box)
    }

    /// Runs `action` in the loop when signal `signo` arrives.
    public func onSignal(_ signo: Int32, _ action: @escaping () -> Void) {
        let box = EventBox(action)
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        box.event = event_new(base, signo, Int16(EV_SIGNAL | EV_PERSIST), eventBoxCallback, ctx)
        event_add(box.event, nil)
        boxes.append(box)
    }
}
