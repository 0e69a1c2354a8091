import ConsentTesting


@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    PolicyExerciser.exercise(String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self), taxonomy: taxonomy)
    return 0
}
