import Foundation
import Stages

/// Markdown, CSV and JSON forms of an experiment report.
extension ExperimentReport {
    /// `gridLinks`: cell label -> relative path of its copied grid (markdown cannot inline PNGs).
    public func markdown(gridLinks: [String: String] = [:]) -> String {
        var out = "# Report: \(title)\n\n"
        if !description.isEmpty { out += description + "\n\n" }
        out += "Experiment `\(file)`" + (runID.map { ", run `\($0)`" } ?? "") + ".\n"
        for n in notes { out += "\n_Note: \(n)._\n" }
        if !tables.isEmpty {
            out += "\n## Tables\n"
            for t in tables { out += "\n" + t.markdown }
        }
        out += "\n## Cells\n\n"
        out += MarkdownTable.render(header: cellHeader, rows: cells.map(cellRow), numericFrom: axisNames.count)
        if !shared.isEmpty {
            out += "\nSame in every cell: " + shared.map { "\($0.column) = \(Self.format($0.value))" }.joined(separator: ", ") + "\n"
        }
        if let baselineLabel {
            out += "\n## Deltas against the baseline \(baselineLabel)\n\n"
            let rows = cells.filter { baselineOf[$0.label] != nil && baselineOf[$0.label] != $0.label }.map { c in
                [c.label] + zip(deltaRow(c), metricColumns).map { d, col in
                    guard let d, let base = baselineCells[baselineOf[c.label]!]?.metrics[col] else { return "" }
                    return Self.signed(d) + (base != 0 ? String(format: " (%+.1f%%)", 100 * d / abs(base)) : "")
                }
            }
            out += MarkdownTable.render(header: ["cell"] + metricColumns.map { "Δ " + $0 }, rows: rows, numericFrom: 1)
        }
        if !differingParams.isEmpty {
            out += "\n## Params that differ between cells\n\n"
            out += MarkdownTable.render(header: ["cell"] + differingParams,
                                        rows: cells.map { c in [c.label] + differingParams.map { c.params[$0]?.shortDescription ?? "" } })
        }
        let withGrids = cells.filter { gridLinks[$0.label] != nil }
        if !withGrids.isEmpty {
            out += "\n## Samples\n\n"
            for c in withGrids { out += "**\(c.label)**\n\n![\(c.label)](\(gridLinks[c.label]!))\n\n" }
        }
        return out
    }

    static func signed(_ v: Double) -> String { (v >= 0 ? "+" : "") + format(v) }

    /// The experiment's tables (one after the other, a blank line apart) or, without table stages,
    /// one row per cell: axes, every metric (shared ones too) and, with a baseline, `Δ` columns.
    public var csv: String {
        if !tables.isEmpty { return tables.map(\.csv).joined(separator: "\n") }
        let columns = metricColumns + shared.map(\.column)
        var header = axisNames + columns
        if baselineLabel != nil { header += metricColumns.map { "Δ " + $0 } }
        var lines = [header]
        for c in cells {
            var line = c.assignment.map(\.value.shortDescription) + columns.map { c.metrics[$0].map { ResultTable.format($0, precision: 10) } ?? "" }
            if baselineLabel != nil { line += deltaRow(c).map { $0.map { ResultTable.format($0, precision: 10) } ?? "" } }
            lines.append(line)
        }
        return CSV.render(lines)
    }

    /// Everything the report knows, as one JSON object.
    public var json: String {
        var cellObjects: [ParamValue] = []
        for c in cells {
            var o: [String: ParamValue] = [
                "label": .string(c.label),
                "axes": .map(Dictionary(uniqueKeysWithValues: c.assignment.map { ($0.key, $0.value) })),
                "metrics": .map(c.metrics.mapValues(Self.number)),
                "params": .map(Dictionary(uniqueKeysWithValues: differingParams.compactMap { k in c.params[k].map { (k, $0) } })),
                "changed": .bool(c.changed),
                "complete": .bool(c.complete),
                "loss_curve": .list(c.lossCurve.map { .list([Self.number($0.x), Self.number($0.y)]) }),
            ]
            if let g = c.grid { o["grid"] = .string(g.path) }
            if let b = baselineOf[c.label] {
                o["baseline"] = .string(b)
                o["deltas"] = .map(Dictionary(uniqueKeysWithValues: zip(metricColumns, deltaRow(c)).compactMap { k, d in d.map { (k, Self.number($0)) } }))
            }
            cellObjects.append(.map(o))
        }
        var top: [String: ParamValue] = [
            "experiment": .string(file),
            "title": .string(title),
            "axes": .list(axes.map(ParamValue.string)),
            "cells": .list(cellObjects),
            "metric_columns": .list(metricColumns.map(ParamValue.string)),
            "shared": .map(Dictionary(uniqueKeysWithValues: shared.map { ($0.column, Self.number($0.value)) })),
            "differing_params": .list(differingParams.map(ParamValue.string)),
            "notes": .list(notes.map(ParamValue.string)),
        ]
        if let runID { top["run"] = .string(runID) }
        if let baselineLabel { top["baseline"] = .string(baselineLabel) }
        var text = Digest.canonicalJSON(.map(top))
        // Tables keep their own (Codable) form.
        let tablesJSON = "[" + tables.map { String(decoding: $0.json, as: UTF8.self) }.joined(separator: ",") + "]"
        text.removeLast()
        text += ",\"tables\":" + tablesJSON + "}"
        return text + "\n"
    }

    /// Non-finite numbers become strings (JSON has no NaN).
    static func number(_ v: Double) -> ParamValue { v.isFinite ? .double(v) : .string(v.isNaN ? "nan" : v > 0 ? "inf" : "-inf") }
}
