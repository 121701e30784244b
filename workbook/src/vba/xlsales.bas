Attribute VB_Name = "xlsales"
' xlsales: the four buttons on the first sheet (the guide) call these macros.
' Each one runs a function of the Python package xlsales through xlwings' RunPython
' (module xlwings of this project; the interpreter is set in the sheet xlwings.conf).
'
' This file is the source of the macros of BigAccount.xlsm: scripts/build_workbook.py puts it
' into the workbook's VBA project. Edit it here, not in Excel's VBA editor, and rebuild.
' Keep it ASCII: Chinese text is written as ChrW() expressions (vba_string_expr in
' xlsales.adapters.vba_project), so it shows the same on any Windows code page.
Option Explicit

' Button: check every input sheet; writes only the sheet of problems.
Public Sub ValidateData()
    RunXlsales "import xlsales.xl; xlsales.xl.validate()", _
        ChrW(&H6B63) & ChrW(&H5728) & ChrW(&H6821) & ChrW(&H9A8C) & ChrW(&H6570) & ChrW(&H636E) & ChrW(&H2026)
End Sub

' Button: validate, then compute scores, tiers, ranking, payouts; writes every output sheet.
Public Sub ComputeAll()
    RunXlsales "import xlsales.xl; xlsales.xl.compute_all()", _
        ChrW(&H6B63) & ChrW(&H5728) & ChrW(&H8BA1) & ChrW(&H7B97) & ChrW(&H6392) & ChrW(&H540D) & ChrW(&H2026)
End Sub

' Button: recompute the payout sheet (keeps the paid dates finance typed in).
Public Sub GeneratePayouts()
    RunXlsales "import xlsales.xl; xlsales.xl.generate_payouts()", _
        ChrW(&H6B63) & ChrW(&H5728) & ChrW(&H751F) & ChrW(&H6210) & ChrW(&H53D1) & ChrW(&H653E) & ChrW(&H8868) & ChrW(&H2026)
End Sub

' Button: import the reps' scorecard files into the relationship log.
Public Sub ImportScorecards()
    RunXlsales "import xlsales.xl; xlsales.xl.import_scorecards()", _
        ChrW(&H6B63) & ChrW(&H5728) & ChrW(&H5BFC) & ChrW(&H5165) & ChrW(&H8BC4) & ChrW(&H5206) & ChrW(&H8868) & ChrW(&H2026)
End Sub

Private Sub RunXlsales(ByVal pythonCommand As String, ByVal status As String)
    On Error GoTo Failed
    Application.StatusBar = status
    Application.Cursor = xlWait
    RunPython pythonCommand
    Application.Cursor = xlDefault
    Application.StatusBar = False
    Exit Sub
Failed:
    Application.Cursor = xlDefault
    Application.StatusBar = False
    MsgBox Err.Description, vbExclamation, "xlsales"
End Sub

' Called from Python (xlsales.adapters.xlwings_port) when app.alert is not available.
Public Sub XlsalesMsgBox(ByVal prompt As String)
    MsgBox prompt, vbInformation, "xlsales"
End Sub
