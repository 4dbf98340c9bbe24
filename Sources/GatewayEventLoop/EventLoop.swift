import CGatewaySystem
import HeapModule
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Readiness flags of a file descriptor, as epoll reports them.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = IOEvents(rawValue: cgs_epollin())
    public static let writable = IOEvents(rawValue: cgs_epollout())
    public static let error = IOEvents(rawValue: cgs_epollerr())
    public static let hangup = IOEvents(rawValue: cgs_epollhup())
    public static let readHangup = IOEvents(rawValue: cgs_epollrdhup())
}

/// Something registered with a loop for a file descriptor. Called only on the loop's thread.
public protocol IOEventHandler: AnyObject {
    func handle(_ events: IOEvents)
}

/// Identifies a scheduled timer so it can be cancelled.
public struct TimerID: Hashable, Sendable {
    let value: UInt64
}

/// One thread, one epoll instance: I/O readiness, timers and Swift tasks all run here.
///
/// Everything registered with a loop (handlers, timers) is confined to its thread; other threads talk
/// to it only through `execute` and `enqueue`, which wake it through an eventfd. The loop is also a
/// `TaskExecutor`, so a request's task created with `executorPreference: loop` runs on the same thread
/// as its connection and needs no hop back to write the response.
public final class EventLoop: TaskExecutor, @unchecked Sendable {
    // @unchecked: `remote` is protected by its Mutex, `threadID` is atomic, and every other stored
    // property is touched only on the loop thread (checked by `assertInEventLoop` in debug builds).

    public let name: String
    private let epoll: FileDescriptor
    private let wake: FileDescriptor
    private let timer: FileDescriptor

    private struct RemoteWork: ~Copyable {
        var jobs: [UnownedJob] = []
        var closures: [@Sendable () -> Void] = []
        var wakePending = false
        var stopRequested = false
    }
    private let remote = Mutex(RemoteWork())
    private let threadID = Atomic<UInt>(0)
    private let finished = Mutex<[CheckedContinuation<Void, Never>]?>([])

    // Loop-thread state.
    private var localJobs: [UnownedJob] = []
    private var localClosures: [() -> Void] = []
    // What `runLocalWork` is running; swapped with the queues above so neither side reallocates.
    private var runningJobs: [UnownedJob] = []
    private var runningClosures: [() -> Void] = []
    private var iterationEndWork: [() -> Void] = []
    private var runningIterationEndWork: [() -> Void] = []
    /// Indexed by descriptor number.
    private var registrations: [Registration?] = []
    private var lastRegistrationID: UInt32 = 0
    private var timers = Heap<TimerEntry>()
    private var timerCallbacks: [UInt64: () -> Void] = [:]
    private var nextTimerID: UInt64 = 1
    private var armedDeadline: UInt64 = 0
    /// Loop thread only: monotonic nanoseconds when this iteration's `epoll_wait` returned, i.e.
    /// when the loop learned of the readiness it is now handling. A request read in this iteration
    /// has been at the gateway since then, even if the connections ahead of it in the batch took
    /// their time.
    public private(set) var iterationStartedAt: UInt64 = 0
    private var running = true

    private struct Registration {
        let handler: any IOEventHandler
        let id: UInt32
    }

    // No descriptor number reaches UInt32.max, so these never equal a registration's user data.
    private static let wakeToken = EPollUserData(fd: -1, registrationID: 0).rawValue
    private static let timerToken = EPollUserData(fd: -2, registrationID: 0).rawValue

    /// This loop's slot in every `LoopLocal` (low 8 bits) and the epoch of its taking it (the rest),
    /// or -1 when all `LoopSlots.count` slots are held by live loops.
    public let localTag: Int

    public init(name: String) throws(SystemError) {
        self.name = name
        // Each descriptor closes itself if a later step throws.
        let epoll = try SystemCall.epollCreate()
        let wake = try SystemCall.eventfdCreate()
        let timer = try SystemCall.timerfdCreate()
        try SystemCall.epollControl(epoll.rawValue, EPOLL_CTL_ADD, wake.rawValue, events: IOEvents.readable.rawValue, data: Self.wakeToken)
        try SystemCall.epollControl(epoll.rawValue, EPOLL_CTL_ADD, timer.rawValue, events: IOEvents.readable.rawValue, data: Self.timerToken)
        self.epoll = epoll
        self.wake = wake
        self.timer = timer
        // Last, once nothing can throw: a loop that failed to start never held a slot.
        self.localTag = LoopSlots.take()
    }

    deinit {
        // After the thread has gone (it holds the loop while it runs), so no two live loops share a slot.
        LoopSlots.give(back: localTag)
    }

    /// The calling thread's loop's `localTag`, or -1 off every loop thread.
    @usableFromInline static var currentLocalTag: Int { Int(cgs_current_loop_tag()) }

    // MARK: - Thread

    /// Starts the loop's thread. Call once.
    public func start() throws(SystemError) {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            let loop = Unmanaged<EventLoop>.fromOpaque(argument).takeRetainedValue()
            loop.threadID.store(UInt(pthread_self()), ordering: .releasing)
            cgs_set_current_loop(argument)
            cgs_set_current_loop_tag(loop.localTag)
            loop.run()
            cgs_set_current_loop_tag(-1)
            cgs_set_current_loop(nil)
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw SystemError(function: "pthread_create", errno: result)
        }
        pthread_detach(thread)
    }

    /// The loop whose thread is calling, or nil off every loop thread.
    public static var current: EventLoop? {
        // The thread-local is set by the loop's own thread, which holds a reference while it runs.
        cgs_current_loop().map { Unmanaged<EventLoop>.fromOpaque($0).takeUnretainedValue() }
    }

    public var inEventLoop: Bool {
        threadID.load(ordering: .acquiring) == UInt(pthread_self())
    }

    @inline(__always)
    public func assertInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(inEventLoop, "called off the event loop thread", file: file, line: line)
    }

    /// Asks the loop to finish its current iteration and exit. Safe from any thread.
    public func stop() {
        remote.withLock { $0.stopRequested = true }
        SystemCall.signalEventfd(wake.rawValue)
    }

    /// Suspends until the loop's thread has exited.
    public func waitUntilStopped() async {
        await withCheckedContinuation { continuation in
            let alreadyFinished = finished.withLock { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters?.append(continuation)
                return false
            }
            if alreadyFinished { continuation.resume() }
        }
    }

    private func run() {
        let capacity = 256
        let events = UnsafeMutableBufferPointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while running {
            let timeout: Int32 = (localJobs.isEmpty && localClosures.isEmpty && iterationEndWork.isEmpty) ? -1 : 0
            let count: Int
            do {
                count = try SystemCall.epollWait(epoll.rawValue, events, timeoutMilliseconds: timeout)
            } catch {
                // EBADF/EINVAL would mean the loop itself is broken; there is nothing to retry.
                fatalError("\(name): \(error)")
            }
            iterationStartedAt = monotonicNanoseconds()
            for index in 0..<count {
                let data = withUnsafePointer(to: &events[index]) { cgs_event_data($0) }
                let flags = withUnsafePointer(to: &events[index]) { cgs_event_flags($0) }
                switch data {
                case Self.wakeToken:
                    SystemCall.drainCounter(wake.rawValue)
                    takeRemoteWork()
                case Self.timerToken:
                    SystemCall.drainCounter(timer.rawValue)
                    armedDeadline = 0
                    fireDueTimers()
                default:
                    dispatch(IOEvents(rawValue: flags), userData: data)
                }
            }
            runLocalWork()
            runIterationEndWork()
            rearmTimerIfNeeded()
        }
        // What the last iteration's end work queued (a log flush for a line it wrote) still runs:
        // nothing would run it after the thread ends.
        for _ in 0..<8 where !(localJobs.isEmpty && localClosures.isEmpty && iterationEndWork.isEmpty) {
            runLocalWork()
            runIterationEndWork()
        }
        let waiters = finished.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            defer { waiters = nil }
            return waiters ?? []
        }
        for waiter in waiters { waiter.resume() }
    }

    private func takeRemoteWork() {
        let (jobs, closures, stop) = remote.withLock { work -> ([UnownedJob], [@Sendable () -> Void], Bool) in
            defer {
                work.jobs.removeAll(keepingCapacity: true)
                work.closures.removeAll(keepingCapacity: true)
                work.wakePending = false
            }
            return (work.jobs, work.closures, work.stopRequested)
        }
        localJobs.append(contentsOf: jobs)
        for closure in closures { localClosures.append(closure) }
        if stop { running = false }
    }

    /// Runs queued work, bounded so that a chain of tasks resuming each other cannot starve I/O.
    private func runLocalWork() {
        var budget = 4096
        while budget > 0 && !(localJobs.isEmpty && localClosures.isEmpty) {
            // Work queued while a batch runs lands in the (emptied) queue and waits for the next round.
            if !localClosures.isEmpty {
                swap(&localClosures, &runningClosures)
                for closure in runningClosures { closure() }
                budget -= runningClosures.count
                runningClosures.removeAll(keepingCapacity: true)
            }
            if !localJobs.isEmpty {
                swap(&localJobs, &runningJobs)
                let executor = asUnownedTaskExecutor()
                for job in runningJobs { job.runSynchronously(on: executor) }
                budget -= runningJobs.count
                runningJobs.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Runs `work` once the loop has handled the events and work of its current iteration, before it
    /// waits again: the place to write out what many handlers produced in one go (log lines), with
    /// nothing left waiting while the loop sleeps. Loop thread only.
    public func runAtIterationEnd(_ work: @escaping () -> Void) {
        assertInEventLoop()
        iterationEndWork.append(work)
    }

    private func runIterationEndWork() {
        // Work that registers more work (rare) runs in the next iteration, which starts at once
        // because `iterationEndWork` is not empty then.
        guard !iterationEndWork.isEmpty else { return }
        swap(&iterationEndWork, &runningIterationEndWork)
        for work in runningIterationEndWork { work() }
        runningIterationEndWork.removeAll(keepingCapacity: true)
    }

    // MARK: - Work from anywhere

    /// Runs `work` on the loop thread: inline-queued when already there, else after a wake-up.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        if inEventLoop {
            localClosures.append(work)
            return
        }
        let needsWake = remote.withLock { state -> Bool in
            state.closures.append(work)
            defer { state.wakePending = true }
            return !state.wakePending
        }
        if needsWake { SystemCall.signalEventfd(wake.rawValue) }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if inEventLoop {
            localJobs.append(job)
            return
        }
        let needsWake = remote.withLock { state -> Bool in
            state.jobs.append(job)
            defer { state.wakePending = true }
            return !state.wakePending
        }
        if needsWake { SystemCall.signalEventfd(wake.rawValue) }
    }

    // MARK: - File descriptors (loop thread only)

    /// Watches `fd` for `interest` until `unregister`. Each registration gets a new id, carried in
    /// the epoll user data beside the number, so an event queued for a descriptor that has since
    /// been closed and whose number was reused is recognised and dropped.
    public func register(_ fd: Int32, interest: IOEvents, handler: any IOEventHandler) throws(SystemError) {
        assertInEventLoop()
        lastRegistrationID &+= 1
        let registration = Registration(handler: handler, id: lastRegistrationID)
        let userData = EPollUserData(fd: fd, registrationID: registration.id)
        try SystemCall.epollControl(epoll.rawValue, EPOLL_CTL_ADD, fd, events: interest.rawValue, data: userData.rawValue)
        let index = Int(fd)
        if index >= registrations.count {
            registrations.append(contentsOf: repeatElement(nil, count: max(index + 1 - registrations.count, registrations.count)))
        }
        registrations[index] = registration
    }

    public func modify(_ fd: Int32, interest: IOEvents) throws(SystemError) {
        assertInEventLoop()
        let index = Int(fd)
        guard index < registrations.count, let registration = registrations[index] else {
            throw SystemError(function: "epoll_ctl (descriptor \(fd) is not registered)", errno: ENOENT)
        }
        let userData = EPollUserData(fd: fd, registrationID: registration.id)
        try SystemCall.epollControl(epoll.rawValue, EPOLL_CTL_MOD, fd, events: interest.rawValue, data: userData.rawValue)
    }

    /// Forgets `fd`. The caller closes it afterwards.
    public func unregister(_ fd: Int32) {
        assertInEventLoop()
        try? SystemCall.epollControl(epoll.rawValue, EPOLL_CTL_DEL, fd, events: 0, data: 0)
        let index = Int(fd)
        if index < registrations.count { registrations[index] = nil }
    }

    /// Hands `events` to the handler the user data names, unless that registration has ended.
    func dispatch(_ events: IOEvents, userData rawValue: UInt64) {
        let userData = EPollUserData(rawValue: rawValue)
        let index = Int(userData.fd)
        guard index >= 0, index < registrations.count, let registration = registrations[index],
              registration.id == userData.registrationID else { return }
        registration.handler.handle(events)
    }

    /// The user data epoll holds for `fd`'s current registration, or nil.
    func registeredUserData(_ fd: Int32) -> UInt64? {
        let index = Int(fd)
        guard index >= 0, index < registrations.count, let registration = registrations[index] else { return nil }
        return EPollUserData(fd: fd, registrationID: registration.id).rawValue
    }

    // MARK: - Timers (loop thread only)

    private struct TimerEntry: Comparable {
        let deadline: UInt64
        let id: UInt64
        static func < (lhs: TimerEntry, rhs: TimerEntry) -> Bool {
            (lhs.deadline, lhs.id) < (rhs.deadline, rhs.id)
        }
    }

    /// Calls `callback` on the loop at or after the monotonic time `deadline` (nanoseconds).
    @discardableResult
    public func scheduleTimer(at deadline: UInt64, _ callback: @escaping () -> Void) -> TimerID {
        assertInEventLoop()
        let id = nextTimerID
        nextTimerID += 1
        timers.insert(TimerEntry(deadline: deadline, id: id))
        timerCallbacks[id] = callback
        if armedDeadline == 0 || deadline < armedDeadline { arm(deadline) }
        return TimerID(value: id)
    }

    public func cancelTimer(_ id: TimerID) {
        assertInEventLoop()
        timerCallbacks[id.value] = nil
    }

    private func fireDueTimers() {
        let now = monotonicNanoseconds()
        while let first = timers.min, first.deadline <= now {
            timers.removeMin()
            if let callback = timerCallbacks.removeValue(forKey: first.id) { callback() }
        }
    }

    private func rearmTimerIfNeeded() {
        // Drop cancelled entries at the front so they do not cause empty wake-ups.
        while let first = timers.min, timerCallbacks[first.id] == nil { timers.removeMin() }
        guard let next = timers.min else { return }
        if armedDeadline == 0 || next.deadline < armedDeadline { arm(next.deadline) }
    }

    private func arm(_ deadline: UInt64) {
        // A deadline of zero would disarm the timerfd; anything already due fires on the next tick.
        let effective = max(deadline, 1)
        try? SystemCall.timerfdArm(timer.rawValue, deadline: effective)
        armedDeadline = effective
    }
}

/// What epoll hands back with an event: the descriptor number in the low 32 bits and the id of its
/// registration in the high 32 (as SwiftNIO's `EPollUserData`).
struct EPollUserData: Equatable {
    let fd: Int32
    let registrationID: UInt32

    init(fd: Int32, registrationID: UInt32) {
        self.fd = fd
        self.registrationID = registrationID
    }

    init(rawValue: UInt64) {
        fd = Int32(bitPattern: UInt32(truncatingIfNeeded: rawValue))
        registrationID = UInt32(truncatingIfNeeded: rawValue >> 32)
    }

    var rawValue: UInt64 {
        UInt64(registrationID) << 32 | UInt64(UInt32(bitPattern: fd))
    }
}

/// A group of loops, one per worker thread.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let nextIndex = Atomic<Int>(0)

    /// `count` 0 means one loop per online CPU.
    public init(count: Int, namePrefix: String = "loop") throws(SystemError) {
        let resolved = count > 0 ? count : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var loops: [EventLoop] = []
        for index in 0..<resolved {
            let loop = try EventLoop(name: "\(namePrefix)-\(index)")
            try loop.start()
            loops.append(loop)
        }
        self.loops = loops
    }

    /// Round-robin choice, for work that is not tied to a connection.
    public func next() -> EventLoop {
        let index = nextIndex.add(1, ordering: .relaxed).oldValue
        return loops[index % loops.count]
    }

    public func shutdown() async {
        for loop in loops { loop.stop() }
        for loop in loops { await loop.waitUntilStopped() }
    }
}

/// Carries a loop-confined value through a `@Sendable` closure. Reading it off its loop is a bug.
public struct LoopBound<Value>: @unchecked Sendable {
    private let storedValue: Value
    public let loop: EventLoop

    public init(_ value: Value, loop: EventLoop) {
        self.storedValue = value
        self.loop = loop
    }

    public var value: Value {
        loop.assertInEventLoop()
        return storedValue
    }
}
