/*
 * Stand-ins for the three small libraries of the asv page that no Python package ships:
 * stupidtable (click-to-sort tables), blueimp-md5 and flot-orderbars.
 *
 * - $.fn.stupidtable(sortFns) / $.fn.stupidsort(direction): clicking a <th data-sort="TYPE"> sorts the
 *   table body by that column (TYPE "string", "int", "float" or a key of sortFns, a comparator of two
 *   cell texts); a cell's data-sort-value attribute, when present, replaces its text. The event
 *   "aftertablesort" gets {column, direction, $th}, as the page expects.
 * - md5(text): NOT MD5. The page only uses it to name the regressions a user hides, in this browser's
 *   localStorage; a 32-bit FNV-1a hash (hex) keeps those names stable.
 * - orderBars: not provided; flot ignores the bars "order" option, so the bars of a categorical
 *   graph are drawn on top of each other instead of side by side.
 */
(function ($) {
    "use strict";

    var builtin = {
        "string": function (a, b) { return a < b ? -1 : (a > b ? 1 : 0); },
        "int": function (a, b) { return parseInt(a, 10) - parseInt(b, 10); },
        "float": function (a, b) { return parseFloat(a) - parseFloat(b); }
    };

    function cellValue(row, column) {
        var cell = $(row).children("td").eq(column);
        var given = cell.attr("data-sort-value");
        return given === undefined ? cell.text() : given;
    }

    function sortBy($th, direction) {
        var table = $th.closest("table");
        var compare = $.extend({}, builtin, table.data("sortFns") || {})[$th.attr("data-sort")];
        if (!compare) {
            return;
        }
        var column = $th.index();
        var sign = direction === "desc" ? -1 : 1;
        var body = table.children("tbody");
        var rows = body.children("tr").get();
        rows.sort(function (a, b) { return sign * compare(cellValue(a, column), cellValue(b, column)); });
        body.append(rows);
        $th.data("sortDir", direction);
        table.trigger("aftertablesort", {column: column, direction: direction, $th: $th});
    }

    $.fn.stupidtable = function (sortFns) {
        return this.each(function () {
            var table = $(this);
            table.data("sortFns", sortFns || {});
            table.on("click.stupidtable", "thead th", function () {
                var $th = $(this);
                $th.stupidsort($th.data("sortDir") === "asc" ? "desc" : "asc");
            });
        });
    };

    $.fn.stupidsort = function (direction) {
        return this.each(function () {
            var $th = $(this);
            sortBy($th, direction || ($th.data("sortDir") === "asc" ? "desc" : "asc"));
        });
    };

    window.md5 = function (text) {
        var hash = 0x811c9dc5;
        var bytes = unescape(encodeURIComponent(String(text)));
        for (var i = 0; i < bytes.length; i++) {
            hash ^= bytes.charCodeAt(i);
            hash = Math.imul(hash, 0x01000193) >>> 0;
        }
        return ("00000000" + hash.toString(16)).slice(-8);
    };
}(jQuery));
