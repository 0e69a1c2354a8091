import ConsentTesting

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = exerciser  // start the daemon before the first input, so its one-time allocations are not charged to an input
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    exerciser.exercise(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
