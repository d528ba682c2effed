"""Import of facility catalogues: CSV (BOM, `;`), XLSX, Vietnamese headers, errors per row."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook  # type: ignore[import-untyped]

from benhan.catalog import Drug, Service, load_catalog
from benhan.catalog.importer import header_key

DRUG_CSV = """\
Mã thuốc;Tên thuốc;Hàm lượng;Đường dùng;Đơn vị tính;Đơn giá;Số đăng ký
40.201;Cefuroxim;500mg;1.01;Viên;18500;VD-12345-21
40.345;Amlodipin;5mg;Uống;Viên;1.250,5;VD-1-20
40.99;;10mg;1.01;Viên;100;
40.100;Omeprazol;20mg;Tiêm vào tai;Viên;abc;
"""


def test_header_key_folds_case_accents_and_spacing() -> None:
    for header in ("Mã thuốc", "MA_THUOC", " ma  THUỐC "):
        assert header_key(header) == "ma_thuoc"
    assert header_key("Đơn giá (VNĐ)") == "don_gia_vnd"


def test_drug_csv_with_bom_semicolon_and_vietnamese_headers(tmp_path: Path) -> None:
    path = tmp_path / "thuoc.csv"
    path.write_bytes(DRUG_CSV.replace("1.250,5", "1250,5").encode("utf-8-sig"))
    result = load_catalog(path, "drug")
    assert result.errors == [
        f"{path}:4: Tên thuốc: thiếu giá trị / missing value",
        f"{path}:5: Đường dùng: đường dùng không rõ / unknown route 'Tiêm vào tai'",
        f"{path}:5: Đơn giá: giá trị không hợp lệ / invalid value 'abc'",
    ]
    assert result.rows == 4 and not result.ok
    assert [d.code for d in result.items] == ["40.201", "40.345"]
    amlodipin = result.items[1]
    assert isinstance(amlodipin, Drug)
    assert amlodipin.route == "1.01"  # "Uống" mapped to the DUONG_DUNG code
    assert (amlodipin.price, amlodipin.registration) == (Decimal("1250.5"), "VD-1-20")


def test_grouped_thousands_are_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "thuoc.csv"
    lines = DRUG_CSV.splitlines()
    path.write_text(f"{lines[0]}\n{lines[2]}\n", encoding="utf-8")
    result = load_catalog(path, "drug")
    assert result.errors == [f"{path}:2: Đơn giá: giá trị không hợp lệ / invalid value '1.250,5'"]


def test_service_csv_comma_english_headers(tmp_path: Path) -> None:
    path = tmp_path / "services.csv"
    path.write_text(
        "service_code,service_name,price,cost_group\n"
        "02.1896,Khám Nội,42100,13\n"
        '22.0120.1370,"Tổng phân tích tế bào máu ngoại vi\n(bằng máy đếm laser)",46200,1\n'
        "22.120.1370,Sai mã,46200,1\n"
        "23.0001.0001,Giá âm,-5,1\n",
        encoding="utf-8",
    )
    result = load_catalog(path, "service")
    assert result.errors == [
        f"{path}:5: service_code: mã dịch vụ sai định dạng / bad MA_DICH_VU '22.120.1370'",
        f"{path}:6: price: giá trị không hợp lệ / invalid value '-5'",
    ]
    exam, cbc = result.items
    assert isinstance(exam, Service) and exam.kind == "exam" and exam.price == Decimal(42100)
    assert isinstance(cbc, Service) and cbc.kind == "lab" and cbc.group == 1


def test_missing_required_column_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "dv.csv"
    path.write_text("TEN_DICH_VU,DON_GIA\nKhám Nội,42100\n", encoding="utf-8")
    result = load_catalog(path, "service")
    assert result.errors == [f"{path}:1: MA_DICH_VU: thiếu cột / column missing"]
    assert result.items == []


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert load_catalog(path, "drug").errors == [f"{path}:1: -: tệp rỗng / empty file"]


def test_xlsx_service_catalogue(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["STT", "MA_DICH_VU", "TEN_DICH_VU", "DON_GIA", "MA_NHOM"])
    sheet.append([1, "18.0015.9001", "Siêu âm ổ bụng", 49300, 2])
    sheet.append([2, "23.0075.1494", "Định lượng Glucose", 21500.0, 1])
    sheet.append([None, None, None, None, None])  # blank rows in exports are skipped
    sheet.append([3, None, "Không mã", 1000, 1])
    sheet.append([4, "21.0014.1778", "Điện tim thường", "ba mươi", 3])
    path = tmp_path / "dmdv.xlsx"
    book.save(path)
    result = load_catalog(path, "service")
    assert result.errors == [
        f"{path}:5: MA_DICH_VU: thiếu giá trị / missing value",
        f"{path}:6: DON_GIA: giá trị không hợp lệ / invalid value 'ba mươi'",
    ]
    assert [(s.code, s.kind, s.price) for s in result.items if isinstance(s, Service)] == [
        ("18.0015.9001", "imaging", Decimal(49300)),
        ("23.0075.1494", "lab", Decimal(21500)),
    ]


def test_xlsx_drug_catalogue(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Mã hoạt chất", "Tên thuốc", "Hàm lượng", "Mã đường dùng", "ĐVT", "Mã ATC"])
    sheet.append(["40.17", "Oxy", "99,5%", "5.01", "Lít", "V03AN01"])
    sheet.append(["40.201", "Cefuroxim", "500mg", "1.01", "Viên", "J01DC0"])
    path = tmp_path / "dmthuoc.xlsx"
    book.save(path)
    result = load_catalog(path, "drug")
    assert result.errors == [f"{path}:3: Mã ATC: mã ATC sai định dạng / bad ATC code 'J01DC0'"]
    assert [d.code for d in result.items] == ["40.17"]


def test_curated_file_round_trips_through_importer() -> None:
    import benhan.catalog

    data = Path(benhan.catalog.__file__).parent / "data"
    drugs = load_catalog(data / "drugs.csv", "drug")
    services = load_catalog(data / "services.csv", "service")
    assert drugs.ok and services.ok
    assert tuple(drugs.items) == benhan.catalog.drugs()
    assert services.items == list(benhan.catalog.services().values())


def test_cli_reports_file_line_and_field(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from benhan.cli import app

    f = tmp_path / "thuoc.csv"
    f.write_text(
        "MA_THUOC,TEN_THUOC,HAM_LUONG,DUONG_DUNG,DON_VI_TINH,DON_GIA\n"
        "40.9001,Paracetamol,500mg,Uống,Viên,abc\n",
        encoding="utf-8",
    )
    r = CliRunner().invoke(app, ["catalog", str(f), "--kind", "drug"])
    assert r.exit_code == 1
    assert f"{f}:2: DON_GIA: " in r.output
    bad = CliRunner().invoke(app, ["catalog", str(f), "--kind", "nope"])
    assert bad.exit_code == 2 and "--kind" in bad.output
