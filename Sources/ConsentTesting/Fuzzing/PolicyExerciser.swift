import ConsentModel
import PolicyEngine

/// Compiles arbitrary text as a policy file, alone (as a taxonomy or anything else) and beside a
/// known-good taxonomy (so rule files compile), and when a set results decides a few requests
/// with it. For the libFuzzer target (`Fuzz/policy`).
public enum PolicyExerciser {
    public static func exercise(_ text: String, taxonomy: String?) {
        compileAndDecide([PolicySource(path: "fuzz.yaml", text: text)])
        if let taxonomy {
            compileAndDecide([PolicySource(path: "taxonomy.yaml", text: taxonomy), PolicySource(path: "fuzz.yaml", text: text)])
        }
    }

    static func compileAndDecide(_ sources: [PolicySource]) {
        let result = PolicyCompiler.compile(sources, vocabulary: Vocabulary())
        for diagnostic in result.diagnostics { _ = diagnostic.description }
        guard let set = result.policySet else { return }
        let now = Timestamp.now()
        for purpose in set.purposes.leaves.prefix(3) {
            for data in set.dataCategories.leaves.prefix(2) {
                for jurisdiction in ["DE", "US-CA", ""] {
                    let request = DecisionRequest(subject: "s", purpose: purpose, dataCategory: data, context: RequestContext(jurisdiction: jurisdiction.isEmpty ? nil : jurisdiction))
                    let decision = set.decide(request, consent: [], now: now)
                    precondition(decision.isAllowed == decision.reason.isAllow, "an allow with a deny reason")
                }
            }
        }
    }
}
