import Foundation
import Stages
import Testing
@testable import Pipeline

/// Typed stage configs: defaults in one place, upper bounds on every numeric field (issue 18.2),
/// operational fields out of the key, gathered cells as explicit key components.
@Suite struct ConfigTests {
    /// A value far beyond any bound, of the field's type (nil: not numeric).
    static func huge(_ type: ParamType) -> ParamValue? {
        switch type {
        case .int: return .int(1 << 60)
        case .double: return .double(1e300)
        case .list(.int): return .list([.int(1 << 60)])
        default: return nil
        }
    }

    @Test func everyNumericFieldRejectsAHugeValue() {
        var numeric = 0
        for kind in StageRegistry.kinds {
            for field in kind.fields {
                guard let huge = Self.huge(field.type) else { continue }
                numeric += 1
                #expect(field.bounds != nil, "\(kind.name).\(field.name) declares no bounds")
                do {
                    _ = try kind.decode([field.name: huge])
                    Issue.record("\(kind.name).\(field.name) accepted \(huge.shortDescription)")
                } catch let e as ConfigErrors {
                    #expect(e.problems.contains { $0.field == field.name && $0.reason == .value },
                            "\(kind.name).\(field.name): \(e)")
                } catch { Issue.record("\(error)") }
            }
        }
        #expect(numeric >= 40)
    }

    @Test func defaultsSatisfyTheirOwnBounds() {
        for kind in StageRegistry.kinds {
            for field in kind.fields {
                guard let value = field.defaultValue else { continue }
                do { _ = try kind.decode([field.name: value]) } catch let e as ConfigErrors {
                    #expect(!e.problems.contains { $0.field == field.name }, "\(kind.name).\(field.name) default: \(e)")
                } catch { Issue.record("\(error)") }
            }
        }
    }

    /// Numbers that overflow an integer (1e300 in an int field) or a float32 are type or range
    /// errors, never a trap in a conversion.
    @Test func conversionsAreChecked() throws {
        for bad: ParamValue in [.double(1e300), .double(.infinity), .double(.nan), .double(-1e300), .double(2.5)] {
            #expect(throws: ConfigErrors.self) { _ = try SampleStage().decode(["num_images": bad]) }
            #expect(throws: ConfigErrors.self) { _ = try TrainStage().decode(["kimg": bad, "batch": bad]) }
        }
        #expect(throws: ConfigErrors.self) { _ = try TrainStage().decode(["kimg": .double(1), "lr": .double(1e39)]) }
        #expect(try TrainStage().decode(["kimg": .double(100_000), "batch": .double(4096)]).batch == 4096)
    }

    func key(_ f: Fixture, _ file: String, stage: String, overrides: [String] = []) throws -> StageKey {
        let expansion = try SpecLoader.expansion(f.url(file), overrides: overrides)
        let inst = try #require(expansion.instance(stage))
        return try StageKey.compute(inst, inputDigests: inst.inputs.mapValues { _ in "upstream" }, projectDirectory: f.dir,
                                    store: try Store(root: f.storeURL))
    }

    /// `checkpoint_kimg` cannot change the result: neither the field nor a param only it reads is
    /// in the key. `tick_kimg` sets the training log's lines, so it is.
    @Test func operationalFieldsStayOutOfTheKey() throws {
        let f = try Fixture()
        try f.write("pipelines/t.yaml", """
            params:
              train:
                checkpoint_kimg: 1
                tick_kimg: 1
            stages:
              data:
                kind: dataset
                source: png-folder
                path: data/imgs
                resolution: 16
              train:
                kind: train
                needs: [data]
                kimg: 1
                checkpoint_kimg: ${train.checkpoint_kimg}
                tick_kimg: ${train.tick_kimg}
            """)
        let base = try key(f, "pipelines/t.yaml", stage: "train")
        #expect(!base.components.keys.contains { $0.contains("checkpoint") }, "\(base.components.keys.sorted())")
        #expect(try key(f, "pipelines/t.yaml", stage: "train", overrides: ["train.checkpoint_kimg=3"]).key == base.key)
        #expect(try key(f, "pipelines/t.yaml", stage: "train", overrides: ["train.tick_kimg=2"]).key != base.key)
        // The field stays visible to reports.
        let inst = try #require(try SpecLoader.expansion(f.url("pipelines/t.yaml"), overrides: []).instance("train"))
        #expect(inst.fields["checkpoint_kimg"] == .double(1) && inst.fields["real_p"] == .double(0.5))
    }

    /// A gathering stage's cells are explicit key components, not hidden fields.
    @Test func gatheredCellsAreKeyComponents() throws {
        let f = try Fixture()
        try f.write("pipelines/p.yaml", """
            params:
              a:
                x: 1
            stages:
              a:
                kind: shell
                params: [a.x]
                cmd: echo $PDPIPE_PARAM_A_X > v.txt
                outs: [v.txt]
            """)
        try f.write("experiments/e.yaml", """
            pipeline: ../pipelines/p.yaml
            matrix:
              a.x: [1, 2]
            tables:
              t:
                rows: [a.x]
                columns:
                  v: a.v
            """)
        let k2 = try key(f, "experiments/e.yaml", stage: "t")
        #expect(k2.components["gathered.cells"] != nil && k2.components["gathered.axes"] != nil)
        #expect(!k2.components.keys.contains { $0.hasPrefix("field.cells") || $0.hasPrefix("field.axes") })
        let k3 = try key(f, "experiments/e.yaml", stage: "t", overrides: ["a.x=1,2,3"])
        #expect(k3.components["gathered.cells"] != k2.components["gathered.cells"])
        let shell = try #require(try SpecLoader.expansion(f.url("experiments/e.yaml"), overrides: []).instance("a@x=1"))
        #expect(shell.reads == ["a.x": .int(1)] && shell.gathered == nil)
    }
}
