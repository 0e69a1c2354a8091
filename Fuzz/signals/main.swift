import ConsentSignals

/// Every input is read as a TC string, a GPP string and a US Privacy string. A string that parses
/// must answer every question without trapping, and its in-place answers must agree with its
/// report (the ids a report lists are exactly the ids `contains` accepts). The per-connection
/// TC string cache, kept across inputs as a connection keeps it across requests, must answer
/// exactly what a fresh reading answers, for the vendor asked about and for another one.
nonisolated(unsafe) let cache = TCFStringCache()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    SignalInvariants.check(bytes)
    let vendors = [1, 755, size > 0 ? Int(bytes[0]) << 8 | Int(bytes[size - 1]) : 2]
    for vendor in vendors + vendors.reversed() {
        let fresh: Result<TCFChoice, SignalError> = Result { () throws(SignalError) in try TCFString(parsing: bytes).choice(of: vendor) }
        let cached: Result<TCFChoice, SignalError> = Result { () throws(SignalError) in try cache.choice(bytes, vendor: vendor) }
        switch (fresh, cached) {
        case let (.success(a), .success(b)): precondition(a == b, "the cache answered another choice")
        case let (.failure(a), .failure(b)): precondition("\(a)" == "\(b)", "the cache failed otherwise")
        default: preconditionFailure("the cache and a fresh reading disagree")
        }
    }
    return 0
}
