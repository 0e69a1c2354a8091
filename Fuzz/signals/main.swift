import ConsentSignals

/// Every input is read as a TC string, a GPP string and a US Privacy string. A string that parses
/// must answer every question without trapping, and its in-place answers must agree with its
/// report (the ids a report lists are exactly the ids `contains` accepts).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    SignalInvariants.check(bytes)
    return 0
}
