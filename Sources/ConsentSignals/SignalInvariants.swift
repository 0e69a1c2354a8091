/// Cross-checks of a string's in-place answers against its report, for the fuzz target and the
/// property tests: a parsed string answers every question without trapping, and the ids its
/// report lists are exactly the ids the in-place queries accept. Traps (precondition) on a
/// disagreement, so a fuzzer records the input.
public enum SignalInvariants {
    /// Reads `bytes` as each kind of string and checks whatever parses.
    public static func check(_ bytes: UnsafeRawBufferPointer) {
        if let tc = try? TCFString(parsing: bytes) { check(tc) }
        if let usp = try? USPrivacyString(parsing: bytes) {
            precondition(usp.version == USPrivacyString.supportedVersion)
            _ = SignalReport.usp(usp)
        }
        if let gpp = try? GPPString(parsing: bytes) { check(gpp) }
    }

    public static func check(_ tc: TCFString) {
        check(tc.vendorConsents)
        check(tc.vendorLegitimateInterests)
        if let disclosed = tc.disclosedVendors { check(disclosed) }
        if let allowed = tc.allowedVendors { check(allowed) }
        var checked = 0
        tc.publisherRestrictions.forEachRange { purpose, type, first, last in
            checked += 1
            precondition(first >= 1 && first <= last)
            guard checked <= 256 else { return }
            precondition(tc.publisherRestrictions.types(purpose: purpose, vendor: first) & (1 << UInt8(type)) != 0)
            precondition(tc.publisherRestrictions.types(purpose: purpose, vendor: last) & (1 << UInt8(type)) != 0)
        }
        let report = SignalValue.object(SignalReport.tcf(tc))
        for purpose in 0...25 {
            precondition(report["purpose_consents"].map { idsContain($0, purpose) } == tc.purposeConsent(purpose))
        }
    }

    public static func check(_ set: VendorSet) {
        let ids = set.ids
        precondition(ids.count <= set.maxVendorId)
        // Every boundary of every run of ids, and the ids just outside it: a bounded number of
        // in-place queries however long the ranges are.
        var previous = 0
        var index = 0
        while index < ids.count {
            let id = ids[index]
            precondition(id > previous && id <= set.maxVendorId, "ids out of order or beyond MaxVendorId")
            var end = index
            while end + 1 < ids.count, ids[end + 1] == ids[end] + 1 { end += 1 }
            for probe in Set([id, ids[end], (id + ids[end]) / 2]) { precondition(set.contains(probe), "a listed id is not contained") }
            if id - 1 > previous { precondition(!set.contains(id - 1), "an unlisted id is contained") }
            if end + 1 < ids.count || ids[end] < set.maxVendorId { precondition(!set.contains(ids[end] + 1), "an unlisted id is contained") }
            previous = ids[end]
            index = end + 1
            if index > 2048 { break }  // a long alternating pattern: enough checked
        }
        precondition(!set.contains(0) && !set.contains(set.maxVendorId + 1) && !set.contains(-1))
        if previous < set.maxVendorId, ids.count < 2048 { precondition(!set.contains(set.maxVendorId)) }
    }

    public static func check(_ gpp: GPPString) {
        var previous = 0
        var count = 0
        gpp.forEachSection { id, _ in
            precondition(id > previous, "section ids out of order")
            previous = id
            count += 1
            precondition(gpp.contains(id))
            switch id {
            case GPPSectionId.tcfEuV2: precondition(gpp.tcfEuV2() != nil)
            case GPPSectionId.usPrivacy: precondition(gpp.usPrivacy() != nil)
            case GPPSectionId.usNational, GPPSectionId.usStates:
                guard let section = gpp.usSection(id) else { preconditionFailure("a checked US section does not parse") }
                for field in USField.allCases {
                    for index in -1...section.count(of: field) {
                        let value = section.value(field, at: index)
                        precondition((value != nil) == (index >= 0 && index < section.count(of: field)))
                        precondition(value.map { (0...3).contains($0) } ?? true)
                    }
                }
            default: break
            }
            return true
        }
        precondition(count == gpp.sectionCount)
        if let tc = gpp.tcfEuV2() { check(tc) }
        _ = SignalReport.gpp(gpp)
    }

    static func idsContain(_ value: SignalValue, _ id: Int) -> Bool {
        guard case .ints(let ids) = value else { return false }
        return ids.contains(id)
    }
}
