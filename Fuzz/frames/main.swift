import ConsentServer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    exerciser.exercise(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
